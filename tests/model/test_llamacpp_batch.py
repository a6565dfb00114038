"""The llama.cpp backend with the real default model: batched decoding, shared prompts, logits
processors, and the memory guard of its KV cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.backends.base import CancelToken, FinishReason, GenerationOutOfMemory, GenerationRequest
from server.backends.decoding import common_prefix
from server.backends.llamacpp_backend import LlamaCppBackend
from server.backends.loader import load_backend
from server.config import Backend, Config, FlashAttention, force_offline
from server.model_assets import ModelError

pytestmark = pytest.mark.model

SOURCE = (Path(__file__).resolve().parents[2] / "server" / "lsp.py").read_text()
TEXTS = [SOURCE[:1500], SOURCE[1500:3000], SOURCE[3000:4200]]


def _backend(**overrides: object) -> LlamaCppBackend:
    force_offline()
    backend = load_backend(Config(backend=Backend.LLAMA_CPP, **overrides))  # type: ignore[arg-type]
    assert isinstance(backend, LlamaCppBackend)
    return backend


def _run_together(backend: LlamaCppBackend, requests: list[GenerationRequest]) -> list[list[int]]:
    decoder = backend.decoder
    seqs = decoder.admit([(r, CancelToken()) for r in requests])
    while decoder.active:
        decoder.step()
    return [s.out for s in seqs]


def _recorder(store: list[np.ndarray]):
    def proc(generated, logits):
        store.append(logits.copy())
        return logits
    return proc


def test_batched_decoding_matches_one_at_a_time() -> None:
    alone_logits: list[list[np.ndarray]] = [[] for _ in TEXTS]
    together_logits: list[list[np.ndarray]] = [[] for _ in TEXTS]
    backend = _backend()
    try:
        alone = [backend.generate(GenerationRequest(backend.encode(t), 12, cache_key=f"d{i}",
                                                    logits_processors=(_recorder(alone_logits[i]),)),
                                  CancelToken()).token_ids for i, t in enumerate(TEXTS)]
    finally:
        backend.close()
    backend = _backend()
    try:
        together = _run_together(backend, [
            GenerationRequest(backend.encode(t), 12, cache_key=f"d{i}",
                              logits_processors=(_recorder(together_logits[i]),))
            for i, t in enumerate(TEXTS)])
        assert backend.decoder.max_width == len(TEXTS)
    finally:
        backend.close()
    # llama.cpp's sums run in a different order for a different batch, so logits differ a
    # little (they are ~20 in magnitude); greedy choices almost never do.
    for a_steps, b_steps in zip(alone_logits, together_logits, strict=True):
        for a, b in zip(a_steps, b_steps, strict=False):
            assert np.abs(a - b).max() < 2.0
    same = sum(a == b for a, b in zip(alone, together, strict=True))
    assert same >= len(TEXTS) - 1, (alone, together)


def test_candidates_share_their_prompt() -> None:
    backend = _backend()
    try:
        prompt = backend.encode(SOURCE[6000:7500])
        before = backend.runner.evaluated_tokens
        outs = _run_together(backend, [
            GenerationRequest(prompt, 10, temperature=0.8, seed=i, cache_key="same")
            for i in range(3)])
        evaluated = backend.runner.evaluated_tokens - before
        # The prompt once, plus one token for each further candidate's own logits.
        assert evaluated <= len(prompt) + 2 * 2, evaluated
        assert len({tuple(o) for o in outs}) >= 2  # sampled with different seeds
    finally:
        backend.close()


def test_logits_processor_steers_the_llamacpp_backend() -> None:
    backend = _backend()
    try:
        prompt = backend.encode("def add(a, b):\n    return")
        plain = backend.generate(GenerationRequest(prompt, 4), CancelToken())
        banned = plain.token_ids[0]

        def ban(generated, logits):
            if not generated:
                logits[banned] = -np.inf
            return logits

        steered = backend.generate(GenerationRequest(prompt, 4, logits_processors=(ban,)),
                                   CancelToken())
        assert steered.token_ids[0] != banned
        assert all(np.isfinite(lp) and lp <= 0 for lp in steered.logprobs)
        assert len(steered.logprobs) == len(steered.token_ids)
    finally:
        backend.close()


def test_full_kv_cache_drops_the_least_recently_used_document() -> None:
    # Room for two of these 400-token prompts at once.
    backend = _backend(kv_cache_tokens=1024, context_window=1024, kv_cache_documents=4)
    try:
        ids = backend.encode(SOURCE)
        prompts = [ids[k * 400:(k + 1) * 400] for k in range(3)]
        for i, p in enumerate(prompts):
            r = backend.generate(GenerationRequest(p, 8, cache_key=f"d{i}"), CancelToken())
            assert r.finish in (FinishReason.LENGTH, FinishReason.EOS, FinishReason.STOP)
        # The first document was dropped to make room for the third; the third is cached.
        assert _cached_prefix(backend, prompts[0]) == 0
        assert _cached_prefix(backend, prompts[2]) >= len(prompts[2])
    finally:
        backend.close()


def test_requests_that_cannot_fit_fail_clearly_and_the_backend_serves_on() -> None:
    backend = _backend(kv_cache_tokens=1024, context_window=1024, kv_cache_documents=4)
    try:
        too_long = backend.encode(SOURCE)[:1100]
        with pytest.raises(ModelError, match="context window"):
            backend.generate(GenerationRequest(too_long, 8), CancelToken())
        # Three prompts of 400 tokens at once do not fit 1024 cells and nothing can be evicted.
        ids = backend.encode(SOURCE)
        prompts = [ids[k * 400:(k + 1) * 400] for k in range(3)]
        with pytest.raises(GenerationOutOfMemory, match="KV cache is full"):
            _run_together(backend, [GenerationRequest(p, 8) for p in prompts])
        assert not backend.decoder.active
        r = backend.generate(GenerationRequest(prompts[0], 8), CancelToken())
        assert r.token_ids
    finally:
        backend.close()


def _cached_prefix(backend: LlamaCppBackend, prompt: list[int]) -> int:
    """How many leading tokens of ``prompt`` some KV slot holds."""
    return max(common_prefix(s.tokens, prompt) for s in backend.runner.slots)


def test_forget_drops_a_closed_documents_cache() -> None:
    backend = _backend()
    try:
        ids = backend.encode(SOURCE)[:200]
        backend.generate(GenerationRequest(ids, 4, cache_key="doc"), CancelToken())
        assert _cached_prefix(backend, ids) >= len(ids) - 1
        backend.decoder.forget("other")
        assert _cached_prefix(backend, ids) >= len(ids) - 1
        backend.decoder.forget("doc")
        assert _cached_prefix(backend, ids) == 0
    finally:
        backend.close()


def test_prefetched_prompt_gives_the_same_answer_and_only_decoding_is_left() -> None:
    # warm() fills the KV cache in chunks of 48 tokens; the request after it evaluates one
    # token and decodes what a cold request decodes.
    backend = _backend()
    try:
        prompt = backend.encode(SOURCE[2000:4000])
        logits_cold: list[np.ndarray] = []
        cold = backend.generate(GenerationRequest(prompt, 16, cache_key="cold",
                                                  logits_processors=(_recorder(logits_cold),)),
                                CancelToken())
        backend.runner.reset()
        before = backend.runner.evaluated_tokens
        chunks = 0
        while backend.runner.warm(prompt, "warm", 48) > 0:
            chunks += 1
        assert chunks == -(-len(prompt) // 48) - 1
        assert backend.runner.evaluated_tokens - before == len(prompt)
        assert backend.runner.prefetched_tokens >= len(prompt)
        assert backend.runner.warm(prompt, "warm", 48) == 0  # already there: nothing to do
        assert backend.runner.evaluated_tokens - before == len(prompt)
        logits_warm: list[np.ndarray] = []
        warm = backend.generate(GenerationRequest(prompt, 16, cache_key="warm",
                                                  logits_processors=(_recorder(logits_warm),)),
                                CancelToken())
        assert warm.extra["reused_tokens"] == len(prompt) - 1
        assert warm.token_ids == cold.token_ids
        assert np.abs(logits_cold[0] - logits_warm[0]).max() < 2.0
    finally:
        backend.close()


def test_prefetch_takes_the_least_recently_used_slot_not_a_running_one() -> None:
    backend = _backend(kv_cache_tokens=1024, context_window=1024, kv_cache_documents=4)
    try:
        ids = backend.encode(SOURCE)
        prompts = [ids[k * 400:(k + 1) * 400] for k in range(3)]
        backend.generate(GenerationRequest(prompts[0], 4, cache_key="d0"), CancelToken())
        backend.generate(GenerationRequest(prompts[1], 4, cache_key="d1"), CancelToken())
        # A third 400-token prompt needs room: the least recently used document (d0) goes.
        while backend.runner.warm(prompts[2], "d2", 128) > 0:
            pass
        assert _cached_prefix(backend, prompts[0]) == 0
        assert _cached_prefix(backend, prompts[1]) >= 400
        assert _cached_prefix(backend, prompts[2]) == 400
    finally:
        backend.close()


def test_a_prefetch_elsewhere_keeps_the_documents_cached_prompt() -> None:
    # The next window of a file (or another part of it) shares nothing with what its slot
    # holds: it goes to another slot, and the prompt the user types at stays cached.
    backend = _backend()
    try:
        ids = backend.encode(SOURCE)
        here, there = ids[:300], ids[1000:1300]
        backend.generate(GenerationRequest(here, 4, cache_key="doc"), CancelToken())
        while backend.runner.warm(there, "doc", 128) > 0:
            pass
        assert _cached_prefix(backend, here) >= 300
        assert _cached_prefix(backend, there) == 300
        r = backend.generate(GenerationRequest(there + ids[1300:1310], 4, cache_key="doc"),
                             CancelToken())
        assert r.extra["reused_tokens"] == 300
    finally:
        backend.close()



def test_flash_attention_setting_reaches_llama_cpp(monkeypatch) -> None:
    """``auto`` turns llama.cpp's flash attention off (faster decoding on the CPUs measured),
    ``on`` turns it on; the two kernels differ in rounding only, so the model's next-token
    scores agree closely."""
    import llama_cpp
    from llama_cpp import _internals

    seen: list[int] = []
    real = _internals.LlamaContext

    def spy(*args, params, **kwargs):
        seen.append(int(params.flash_attn_type))
        return real(*args, params=params, **kwargs)

    monkeypatch.setattr(_internals, "LlamaContext", spy)
    firsts: dict[FlashAttention, list[np.ndarray]] = {}
    for setting in (FlashAttention.AUTO, FlashAttention.ON):
        backend = _backend(flash_attention=setting)
        try:
            firsts[setting] = []
            backend.generate(GenerationRequest(backend.encode(TEXTS[0]), 1,
                                               logits_processors=(_recorder(firsts[setting]),)),
                             CancelToken())
        finally:
            backend.close()
    assert seen == [llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
                    llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED]
    off, on = firsts[FlashAttention.AUTO][0], firsts[FlashAttention.ON][0]
    assert int(np.argmax(off)) == int(np.argmax(on))
    assert not np.array_equal(off, on)  # really two kernels
    assert float(np.max(np.abs(off - on))) < 0.5
