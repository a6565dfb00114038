"""llama.cpp backend (llama-cpp-python): loads the GGUF file directly, no conversion.

Why it is the CPU default: on 2 cores it decodes the default model about twice as fast as
transformers in fp32, loads in about a second, needs about a fifth of the memory, and keeps the
KV cache of the previous prompt, so a request whose prompt starts with the previous prompt (the
user typed a few characters) only evaluates the new tokens. On a CPU that reuse decides latency:
a cold 750-token prefill takes seconds, a reused one tens of milliseconds.

llama.cpp holds one KV cache per context. When a request comes for another document, the KV
state of the current one is copied out (about 12 KB a token for the default model) into a small
LRU of per-document states, and the new document's saved state, if any, is copied back in: going
back to a file you were typing in costs a copy, not a cold prefill.

llama_cpp is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.backends.base import (
    CancelToken,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    detect_fim,
)
from server.config import Config
from server.model_assets import ModelError, ModelFormat, ModelSource

logger = logging.getLogger(__name__)


class LlamaCppBackend:
    # Saved per-document KV states; 8 documents x ~5 MB for a 400-token prompt.
    MAX_SAVED_STATES = 8

    def __init__(self, llm: Any, info: ModelInfo, special_ids: frozenset[int]) -> None:
        self._llm = llm
        self.info = info
        self._special_ids = special_ids
        self._stop_ids = special_ids
        self._owner: str | None = None  # cache_key of the prompt now in the KV cache
        self._states: OrderedDict[str, tuple[list[int], bytes]] = OrderedDict()
        self.last_reused_tokens = 0  # prompt tokens served from the KV cache by the last call

    @classmethod
    def load(cls, source: ModelSource, config: Config, cache_dir: Path,
             progress: Any = None) -> LlamaCppBackend:
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelError("backend 'llama.cpp' needs the llama-cpp-python package") from exc
        if source.format is not ModelFormat.GGUF:
            raise ModelError(f"backend 'llama.cpp' needs a .gguf model file, not {source.path}")
        if progress:
            progress(f"Loading {source.display_name} with llama.cpp")
        t0 = time.perf_counter()
        threads = config.threads or max(1, os.cpu_count() or 1)
        try:
            llm = llama_cpp.Llama(
                model_path=str(source.path),
                n_ctx=config.context_window,
                n_batch=512,
                n_threads=threads,
                n_threads_batch=threads,
                seed=config.seed,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {source.path}: {exc}") from exc
        vocab = llm._model.vocab
        n_vocab = llm.n_vocab()
        # Control and end-of-generation tokens end generation and never reach the user, as in
        # the transformers backend (there: all special tokens).
        special_ids: set[int] = set()
        specials: set[str] = set()
        for tid in range(n_vocab):
            if llama_cpp.llama_vocab_is_control(vocab, tid) or \
                    llama_cpp.llama_vocab_is_eog(vocab, tid):
                special_ids.add(tid)
                specials.add(llm.detokenize([tid], special=True).decode("utf-8", "replace"))
        info = ModelInfo(
            name=source.display_name,
            backend="llama.cpp",
            device="cpu",
            quantization=str(llm.metadata.get("general.file_type", "gguf")),
            dtype="gguf",
            fim=detect_fim(specials),
            special_tokens=frozenset(specials),
            load_s=time.perf_counter() - t0,
            weight_bytes=source.path.stat().st_size,
            context_window=int(llm.n_ctx()),
        )
        logger.info("llama.cpp model ready: %s (%d threads)", info, threads)
        return cls(llm, info, frozenset(special_ids))

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._llm.detokenize(list(ids), special=True).decode("utf-8", "replace"))

    def token_id(self, token: str) -> int | None:
        ids = self._llm.tokenize(token.encode("utf-8"), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 else None

    def cached_prefix(self, prompt_ids: Sequence[int]) -> int:
        """How many leading prompt tokens are already in the KV cache."""
        n = _common_prefix(self._llm._input_ids, prompt_ids)
        return min(n, len(prompt_ids) - 1) if prompt_ids else 0

    def _switch_document(self, key: str | None, prompt: Sequence[int]) -> None:
        """Make the KV cache the one of document ``key`` (saving the current one)."""
        if key is None or key == self._owner:
            return
        import ctypes

        import llama_cpp

        llm = self._llm
        ctx = llm._ctx.ctx
        if self._owner is not None and llm.n_tokens > 0:
            size = llama_cpp.llama_state_seq_get_size(ctx, 0)
            buf = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
            self._states[self._owner] = (list(llm._input_ids), bytes(buf)[:written])
            self._states.move_to_end(self._owner)
            while len(self._states) > self.MAX_SAVED_STATES:
                self._states.popitem(last=False)
        self._owner = key
        saved = self._states.pop(key, None)
        if saved is None:
            return
        tokens, data = saved
        if _common_prefix(tokens, prompt) <= _common_prefix(llm._input_ids, prompt):
            return  # what is in the cache now serves this prompt at least as well
        llm._ctx.kv_cache_clear()
        src = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(ctx, src, len(data), 0) != len(data):
            logger.warning("could not restore the KV cache of %s; evaluating afresh", key)
            llm._ctx.kv_cache_clear()
            llm.n_tokens = 0
            return
        llm.input_ids[: len(tokens)] = tokens
        llm.n_tokens = len(tokens)
        llm._requires_eval = True

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> GenerationResult:
        llm = self._llm
        prompt = list(request.prompt_ids)
        if len(prompt) + request.max_new_tokens > llm.n_ctx():
            raise ModelError(
                f"prompt of {len(prompt)} tokens + {request.max_new_tokens} new tokens does not "
                f"fit the context window of {llm.n_ctx()} tokens")
        self._switch_document(request.cache_key, prompt)
        reused = self.cached_prefix(prompt)
        self.last_reused_tokens = reused
        out: list[int] = []
        finish = FinishReason.LENGTH
        t0 = time.perf_counter()
        first: float | None = None

        greedy = request.temperature <= 0
        # NOTE: no logits processor here: llama-cpp-python runs it as a ctypes callback, where an
        # exception is printed and ignored, so cancellation is checked between tokens instead
        # (once per decoding step, before the next one starts).
        for tok in llm.generate(prompt, temp=0.0 if greedy else request.temperature,
                                top_k=0, top_p=request.top_p, min_p=0.0, repeat_penalty=1.0,
                                reset=True):
            if first is None:
                first = time.perf_counter()
            out.append(int(tok))
            if tok in self._stop_ids:
                finish = FinishReason.EOS
                break
            if cancel.cancelled:
                finish = FinishReason.CANCELLED
                break
            if len(out) >= request.max_new_tokens:
                break
            if request.stop is not None and request.stop(self._visible_text(out)):
                finish = FinishReason.STOP
                break
        t_end = time.perf_counter()
        first = first or t_end
        return GenerationResult(
            token_ids=out,
            text=self._visible_text(out),
            finish=finish,
            prompt_tokens=len(prompt),
            prefill_s=first - t0,
            decode_s=t_end - first,
            extra={"reused_tokens": float(reused)},
        )

    def _visible_text(self, ids: list[int]) -> str:
        return self.decode([i for i in ids if i not in self._special_ids])

    def close(self) -> None:
        self._states.clear()
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
