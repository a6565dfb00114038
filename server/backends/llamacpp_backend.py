"""llama.cpp backend (llama-cpp-python): loads the GGUF file directly, no conversion.

Why it is the CPU default: on 2 cores it decodes the default model about twice as fast as
transformers in fp32, loads in about a second and needs a fraction of the memory.

It drives llama.cpp's low-level API (``llama_decode`` on multi-sequence batches) instead of
``Llama.generate``, for three reasons:

- **KV reuse per document.** The context holds ``kvCacheDocuments`` sequences ("slots") in one
  unified KV cache of ``kvCacheTokens`` cells. A prompt goes to the idle slot that already holds
  the longest prefix of it (the same document's previous prompt), so typing a few characters only
  evaluates the new tokens, and switching back to another file costs nothing. When the cells run
  out, the least recently used idle slot is emptied.
- **Batching.** The sequences of several requests (several documents, or the n candidates of one
  request, which share their prompt's KV cells instead of evaluating it n times) advance one
  token each in a single ``llama_decode`` call: on 2 cores 4 sequences step in about 1.7x the time
  of one.
- **Logits in Python.** Each step's logits go through our logits processors and sampler
  (``decoding.py``); llama-cpp-python would run a processor as a ctypes callback, where an
  exception is printed and ignored.

llama_cpp is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from server.backends.base import (
    CancelToken,
    GenerationOutOfMemory,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    detect_fim,
)
from server.backends.decoding import (
    BatchDecoder,
    Logits,
    SeqState,
    common_prefix,
    generate_one,
    slot_rank,
)
from server.config import Config, FlashAttention
from server.model_assets import ModelError, ModelFormat, ModelSource

logger = logging.getLogger(__name__)

# A follower (a prompt sharing a long prefix with another prompt of the same batch, such as the
# n candidates of one request) copies the leader's cells when that saves at least this many tokens.
_SHARE_MIN_TOKENS = 16


@dataclass(eq=False)
class _Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # what the KV cache holds for this sequence
    cache_key: str | None = None
    last_used: float = 0.0
    busy: bool = False


class LlamaCppRunner:
    """The :class:`~server.backends.decoding.KVRunner` over one llama.cpp context."""

    def __init__(self, llama_cpp: Any, ctx: Any, n_vocab: int, n_slots: int, n_batch: int,
                 context_window: int) -> None:
        self._ll = llama_cpp
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_vocab = n_vocab
        self._n_batch = n_batch
        self.context_window = context_window
        self.slots = [_Slot(i) for i in range(n_slots)]
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.evaluated_tokens = 0  # prompt tokens actually evaluated, for tests and benchmarks
        self.prefetched_tokens = 0  # of those, evaluated by prefetch (warm) in idle time

    @property
    def capacity(self) -> int:
        """How many sequences can decode at once: one KV slot each."""
        return len(self.slots)

    # --- KV bookkeeping -------------------------------------------------------------------

    def _pick_slot(self, prompt: list[int], key: str | None, taken: set[int]) -> _Slot:
        free = [s for s in self.slots if not s.busy and s.seq_id not in taken]
        if not free:
            raise ModelError("pingti: more concurrent sequences than KV slots; lower maxBatchSize "
                             "or raise kvCacheDocuments")

        return max(free, key=lambda s: slot_rank(s.tokens, prompt,
                                                 key is not None and s.cache_key == key,
                                                 s.last_used))

    def _truncate(self, slot: _Slot, n: int) -> None:
        if n < len(slot.tokens):
            self._ll.llama_memory_seq_rm(self._mem, slot.seq_id, n, -1)
            del slot.tokens[n:]

    def _evict_one(self, protect: set[int]) -> bool:
        idle = [s for s in self.slots if not s.busy and s.seq_id not in protect and s.tokens]
        if not idle:
            return False
        victim = min(idle, key=lambda s: s.last_used)
        logger.info("KV cache full: dropping the cached prompt of %s (%d tokens)",
                    victim.cache_key, len(victim.tokens))
        self._truncate(victim, 0)
        victim.cache_key = None
        return True

    def _decode(self, items: list[tuple[int, int, int, bool]], protect: set[int]) -> None:
        """One llama_decode of (token, pos, seq_id, want_logits) items; frees cells if needed."""
        b = self._batch
        b.n_tokens = len(items)
        for i, (tok, pos, seq, want) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = want
        while True:
            rc = self._ll.llama_decode(self._ctx, b)
            if rc == 0:
                return
            if rc == 1 and self._evict_one(protect):
                continue  # llama.cpp left the cache as it was: retry with more free cells
            if rc == 1:
                raise GenerationOutOfMemory(
                    "the KV cache is full (kvCacheTokens); lower maxBatchSize or contextTokens, "
                    "or raise kvCacheTokens")
            if rc == -2:  # llama.cpp: "failed to allocate the compute buffers"
                raise GenerationOutOfMemory(f"llama.cpp could not allocate memory (llama_decode {rc})")
            raise ModelError(f"llama.cpp could not evaluate the batch (llama_decode {rc})")

    def _logits(self, i: int) -> Logits:
        ptr = self._ll.llama_get_logits_ith(self._ctx, i)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).copy()

    # --- KVRunner -------------------------------------------------------------------------

    def prefill(self, seqs: Sequence[SeqState]) -> list[Logits]:
        for s in seqs:
            need = len(s.request.prompt_ids) + s.request.max_new_tokens
            if not s.request.prompt_ids:
                raise ModelError("pingti: empty prompt")
            if need > self.context_window:
                raise ModelError(
                    f"prompt of {len(s.request.prompt_ids)} tokens + {s.request.max_new_tokens} "
                    f"new tokens does not fit the context window of {self.context_window} tokens")
        now = time.perf_counter()
        taken: set[int] = set()
        try:
            return self._prefill(seqs, now, taken)
        except BaseException:
            # Whatever these prompts left half-evaluated is dropped; the slots are free again.
            for slot in self.slots:
                if slot.seq_id in taken:
                    self._truncate(slot, 0)
                    slot.busy = False
            raise

    def _prefill(self, seqs: Sequence[SeqState], now: float, taken: set[int]) -> list[Logits]:
        prompts = [list(s.request.prompt_ids) for s in seqs]
        leaders: list[int] = []
        followers: list[tuple[int, int]] = []  # (seq index, leader index)
        for i, s in enumerate(seqs):
            slot = self._pick_slot(prompts[i], s.request.cache_key, taken)
            taken.add(slot.seq_id)
            slot.busy, slot.last_used = True, now
            slot.cache_key = s.request.cache_key or slot.cache_key
            s.handle = slot
            own = min(common_prefix(slot.tokens, prompts[i]), len(prompts[i]) - 1)
            best = max(((common_prefix(prompts[j], prompts[i]), j) for j in leaders), default=(0, -1))
            if min(best[0], len(prompts[i]) - 1) >= own + _SHARE_MIN_TOKENS:
                followers.append((i, best[1]))
            else:
                self._truncate(slot, own)
                leaders.append(i)
        logits: dict[int, Logits] = {}
        self._evaluate([(i, prompts[i]) for i in leaders], seqs, logits, taken)
        for i, j in followers:
            slot, src = seqs[i].handle, seqs[j].handle
            n = min(common_prefix(prompts[j], prompts[i]), len(prompts[i]) - 1)
            self._truncate(slot, 0)
            self._ll.llama_memory_seq_cp(self._mem, src.seq_id, slot.seq_id, 0, n)
            slot.tokens = prompts[i][:n]
        self._evaluate([(i, prompts[i]) for i, _ in followers], seqs, logits, taken)
        return [logits[i] for i in range(len(seqs))]

    def _evaluate(self, work: list[tuple[int, list[int]]], seqs: Sequence[SeqState],
                  logits: dict[int, Logits], protect: set[int]) -> None:
        """Evaluate each prompt's uncached tail, packed into batches of up to n_batch tokens."""
        pending: list[tuple[int, int, int, bool, int]] = []  # token, pos, seq, want, index
        for i, prompt in work:
            slot: _Slot = seqs[i].handle
            seqs[i].reused = len(slot.tokens)
            start = len(slot.tokens)
            for p in range(start, len(prompt)):
                pending.append((prompt[p], p, slot.seq_id, p == len(prompt) - 1, i))
            self.evaluated_tokens += len(prompt) - start
            slot.tokens = list(prompt)
        for c in range(0, len(pending), self._n_batch):
            chunk = pending[c:c + self._n_batch]
            self._decode([(t, p, q, w) for t, p, q, w, _ in chunk], protect)
            for k, (_, _, _, want, i) in enumerate(chunk):
                if want:
                    logits[i] = self._logits(k)

    def warm(self, prompt: Sequence[int], cache_key: str | None, max_tokens: int) -> int:
        """Prefetch: evaluate up to ``max_tokens`` more tokens of ``prompt`` into the idle slot
        that best holds it (no logits), so a request with this prompt later finds it cached.
        Returns how many tokens of ``prompt`` are still not cached.

        Called only while no sequence is running (the scheduler's idle time). The cells come
        from the same bounded pool as every request's: when it is full the least recently used
        idle document is dropped, as for a request."""
        prompt = list(prompt)
        if not prompt or not any(not s.busy for s in self.slots):
            return len(prompt)
        prompt = prompt[:self.context_window]
        # Ranked without the key: a prefetch that shares nothing with its document's slot (the
        # next window, another part of the file) takes an empty or the least recently used
        # slot, and the document keeps what it has cached for the requests of now.
        slot = self._pick_slot(prompt, None, set())
        n = common_prefix(slot.tokens, prompt)
        self._truncate(slot, n)
        slot.cache_key = cache_key or slot.cache_key
        slot.last_used = time.perf_counter()
        end = min(len(prompt), n + max(1, min(max_tokens, self._n_batch)))
        if end > n:
            try:
                self._decode([(prompt[p], p, slot.seq_id, False) for p in range(n, end)],
                             {slot.seq_id})
            except BaseException:
                # Cells a failed batch may have written are not trusted.
                self._ll.llama_memory_seq_rm(self._mem, slot.seq_id, n, -1)
                raise
            slot.tokens = prompt[:end]
            self.evaluated_tokens += end - n
            self.prefetched_tokens += end - n
        return len(prompt) - end

    def step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[Logits]:
        items = []
        for s, tok in zip(seqs, tokens, strict=True):
            slot: _Slot = s.handle
            items.append((tok, len(slot.tokens), slot.seq_id, True))
        self._decode(items, {s.handle.seq_id for s in seqs})
        for s, tok in zip(seqs, tokens, strict=True):
            s.handle.tokens.append(tok)
        return [self._logits(k) for k in range(len(seqs))]

    def verify(self, seqs: Sequence[SeqState], tokens: Sequence[Sequence[int]]
               ) -> list[list[Logits]]:
        """Speculative step: every token of ``tokens[i]`` appended to sequence ``i`` in one
        llama_decode, with the logits after each (the decoder keeps the draft's prefix that
        greedy decoding would have chosen and rolls back the rest)."""
        items: list[tuple[int, int, int, bool]] = []
        for s, toks in zip(seqs, tokens, strict=True):
            slot: _Slot = s.handle
            base = len(slot.tokens)
            items.extend((tok, base + j, slot.seq_id, True) for j, tok in enumerate(toks))
        flat: list[Logits] = []
        for c in range(0, len(items), self._n_batch):  # wide batches: several evaluations
            chunk = items[c:c + self._n_batch]
            self._decode(chunk, {s.handle.seq_id for s in seqs})
            flat.extend(self._logits(k) for k in range(len(chunk)))
        out: list[list[Logits]] = []
        k = 0
        for s, toks in zip(seqs, tokens, strict=True):
            s.handle.tokens.extend(toks)
            out.append(flat[k:k + len(toks)])
            k += len(toks)
        return out

    def rollback(self, seq: SeqState, n: int) -> None:
        slot: _Slot = seq.handle
        self._truncate(slot, len(slot.tokens) - n)

    def forget(self, cache_key: str) -> None:
        """Drop the cached prompt of a closed document (idle slots only: a running sequence
        keeps its cells until it finishes)."""
        for slot in self.slots:
            if slot.cache_key == cache_key and not slot.busy:
                self._truncate(slot, 0)
                slot.cache_key = None

    def release(self, seqs: Sequence[SeqState]) -> None:
        now = time.perf_counter()
        for s in seqs:
            if isinstance(s.handle, _Slot):
                s.handle.busy = False
                s.handle.last_used = now

    def reset(self) -> None:
        self._ll.llama_memory_clear(self._mem, True)
        for slot in self.slots:
            slot.tokens.clear()
            slot.busy = False
            slot.cache_key = None

    def close(self) -> None:
        if self._batch is not None:
            self._ll.llama_batch_free(self._batch)
            self._batch = None


class ModelDrafter:
    """Speculative drafts from a smaller model of the same tokenizer (the 0.5B model for the
    1.5B one): the :class:`~server.backends.decoding.Drafter` over a second llama.cpp context.

    Each call brings the draft model's KV slot of every sequence up to the sequence's prompt and
    output (its prefill reuses the slot that holds the longest prefix, so after the first call
    only the tokens since the last draft are evaluated, and a rejected draft's tail is cut),
    then decodes greedily, all sequences in one batch per token. A draft ends where the draft
    model is unsure: llama.cpp's own speculative example stops at a top probability below
    ``p_min`` = 0.75 (common/common.h), and so do we: an unsure token is likely rejected and
    only adds to the width the target has to verify."""

    def __init__(self, runner: LlamaCppRunner, stop_ids: frozenset[int], name: str = "",
                 p_min: float = 0.75) -> None:
        self.runner = runner
        self.name = name  # the draft model, for the status
        self._stop_ids = stop_ids
        self.p_min = p_min

    def propose(self, seqs: Sequence[SeqState], limits: Sequence[int]) -> list[list[int]]:
        shadows = [SeqState(GenerationRequest([*s.request.prompt_ids, *s.out], max(1, k),
                                              cache_key=s.request.cache_key), s.cancel)
                   for s, k in zip(seqs, limits, strict=True)]
        drafts: list[list[int]] = [[] for _ in seqs]
        try:
            logits = self.runner.prefill(shadows)
            todo = list(range(len(seqs)))
            while todo:
                going = []
                for i, lg in zip(todo, logits, strict=True):
                    tok, p = _top(lg)
                    if p < self.p_min:
                        continue
                    drafts[i].append(tok)
                    if tok not in self._stop_ids and len(drafts[i]) < limits[i]:
                        going.append(i)
                todo = going
                if todo:
                    logits = self.runner.step([shadows[i] for i in todo],
                                              [drafts[i][-1] for i in todo])
        finally:
            self.runner.release(shadows)
        return drafts

    def forget(self, cache_key: str) -> None:
        self.runner.forget(cache_key)

    def reset(self) -> None:
        self.runner.reset()

    def close(self) -> None:
        self.runner.close()


def _top(logits: Logits) -> tuple[int, float]:
    """The most likely token and its probability."""
    tok = int(np.argmax(logits))
    z = np.exp(logits - logits[tok], dtype=np.float64)
    return tok, float(1.0 / z.sum())


class GgufVocab:
    """A GGUF model's tokenizer: text to ids and back (special tokens as their text), and
    which tokens are control or end-of-generation tokens. The local backend uses it, and the
    remote engines (server/remote.py) load it alone (``vocab_only``) to build their prompts."""

    def __init__(self, model: Any) -> None:
        import llama_cpp

        self._ll = llama_cpp
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model.model)
        self._pieces: dict[int, bytes] = {}  # token id -> its bytes; detokenizing every step
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))

    @classmethod
    def load(cls, path: Path, cache_dir: Path) -> tuple[GgufVocab, Any]:
        """The vocabulary of the GGUF file alone (no weights: a fraction of a second), and the
        model handle that owns it (close it when done)."""
        try:
            import llama_cpp
            from llama_cpp import _internals
            from llama_cpp._logger import set_verbose
        except ImportError as exc:
            raise ModelError("the tokenizer of a remote engine's prompts needs the "
                             "llama-cpp-python package") from exc
        from server.backends.ggml_cpu import ensure_cpu_backend

        set_verbose(False)
        try:
            ensure_cpu_backend(path, cache_dir)  # llama.cpp loads nothing without a backend
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp has no working CPU backend: {exc}") from exc
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        try:
            model = _internals.LlamaModel(path_model=str(path), params=params, verbose=True)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not read the vocabulary of {path}: {exc}") from exc
        return cls(model), model

    def specials(self) -> tuple[frozenset[int], frozenset[str]]:
        """Control and end-of-generation tokens: they end generation and never reach the user
        (as in the transformers backend: all special tokens)."""
        ids: set[int] = set()
        texts: set[str] = set()
        ll, vocab = self._ll, self._vocab
        for tid in range(self.n_vocab):
            if ll.llama_vocab_is_control(vocab, tid) or ll.llama_vocab_is_eog(vocab, tid):
                ids.add(tid)
                texts.add(_piece(ll, vocab, tid).decode("utf-8", "replace"))
        return frozenset(ids), frozenset(texts)

    def encode(self, text: str, special: bool = False) -> list[int]:
        if not text:
            return []
        return list(self._model.tokenize(text.encode("utf-8"), False, special))

    def decode(self, ids: Sequence[int]) -> str:
        pieces = self._pieces
        out = []
        for tid in ids:
            piece = pieces.get(tid)
            if piece is None:
                piece = pieces[tid] = _piece(self._ll, self._vocab, tid)
            out.append(piece)
        # Bytes first: a character may be split across two tokens.
        return b"".join(out).decode("utf-8", "replace")

    def token_id(self, token: str) -> int | None:
        ids = self._model.tokenize(token.encode("utf-8"), False, True)
        return ids[0] if len(ids) == 1 else None


class LlamaCppBackend:
    def __init__(self, model: Any, ctx: Any, runner: LlamaCppRunner, info: ModelInfo,
                 special_ids: frozenset[int], draft_tokens: int = 0,
                 drafter: _LoadedDrafter | None = None) -> None:
        self._tok = GgufVocab(model)
        self._model = model
        self._ctx = ctx
        self.runner = runner
        self.info = info
        self._special_ids = special_ids
        self.vocab_size = runner._n_vocab  # the logits' length
        self._draft = drafter
        self._decoder = BatchDecoder(runner, special_ids, self.decode, draft_tokens,
                                     drafter.drafter if drafter else None)

    @classmethod
    def load(cls, source: ModelSource, config: Config, cache_dir: Path,
             progress: Any = None) -> LlamaCppBackend:
        try:
            import llama_cpp
            from llama_cpp._logger import set_verbose
        except ImportError as exc:
            raise ModelError("backend 'llama.cpp' needs the llama-cpp-python package") from exc
        if source.format is not ModelFormat.GGUF:
            raise ModelError(f"backend 'llama.cpp' needs a .gguf model file, not {source.path}")
        if progress:
            progress(f"Loading {source.display_name} with llama.cpp")
        set_verbose(False)  # llama.cpp's own log would flood the server's stderr
        t0 = time.perf_counter()
        from server.backends.ggml_cpu import ensure_cpu_backend

        try:
            # A build with CPU variants (scripts/setup.sh) registers none by itself.
            variant = ensure_cpu_backend(source.path, cache_dir)
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp has no working CPU backend: {exc}") from exc
        threads = config.threads or max(1, os.cpu_count() or 1)
        n_slots = max(config.kv_cache_documents, config.max_batch_size)
        n_batch = 512
        llama_cpp.llama_backend_init()
        model, ctx = _open(llama_cpp, source.path, config, n_slots, n_batch, threads)
        vocab = GgufVocab(model)
        n_vocab = vocab.n_vocab
        special_ids, specials = vocab.specials()
        runner = LlamaCppRunner(llama_cpp, ctx.ctx, n_vocab, n_slots, n_batch,
                                min(config.context_window, int(llama_cpp.llama_n_ctx(ctx.ctx))))
        drafter = None
        if config.draft_tokens and config.draft_model:
            try:
                drafter = _load_drafter(llama_cpp, config, cache_dir, progress, vocab,
                                        special_ids, n_slots, n_batch, threads)
            except BaseException:
                runner.close()
                ctx.close()
                model.close()
                raise
        info = ModelInfo(
            name=source.display_name,
            backend="llama.cpp",
            device="cpu",
            quantization=_file_type(model),
            dtype="gguf",
            fim=detect_fim(set(specials)),
            special_tokens=frozenset(specials),
            load_s=time.perf_counter() - t0,
            weight_bytes=source.path.stat().st_size,
            context_window=runner.context_window,
            path=str(source.path),
        )
        logger.info("llama.cpp model ready: %s (%d threads, %d KV cells, %d slots, CPU kernels "
                    "%s)", info, threads, llama_cpp.llama_n_ctx(ctx.ctx), n_slots,
                    variant or "built in")
        return cls(model, ctx, runner, info, special_ids, config.draft_tokens, drafter)

    @property
    def decoder(self) -> BatchDecoder:
        return self._decoder

    def encode(self, text: str, special: bool = False) -> list[int]:
        return self._tok.encode(text, special)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(ids)

    def token_id(self, token: str) -> int | None:
        return self._tok.token_id(token)

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> GenerationResult:
        return generate_one(self._decoder, request, cancel)

    def close(self) -> None:
        draft, self._draft = self._draft, None
        if draft is not None:
            draft.close()
        runner, self.runner = self.runner, None  # type: ignore[assignment]
        if runner is not None:
            runner.close()
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.close()
        model, self._model = self._model, None
        if model is not None:
            model.close()


def _open(llama_cpp: Any, path: Path, config: Config, n_slots: int, n_batch: int,
          threads: int) -> tuple[Any, Any]:
    """A GGUF model and a context of ``n_slots`` sequences over one pool of KV cells."""
    from llama_cpp import _internals

    try:
        # verbose=True: with False, llama-cpp-python points fds 1 and 2 at /dev/null for
        # the whole load (from this thread), and every LSP message the event loop writes
        # meanwhile (pingti/status answers, progress) is lost. set_verbose(False) in the
        # caller already keeps llama.cpp's log quiet.
        model = _internals.LlamaModel(path_model=str(path),
                                      params=llama_cpp.llama_model_default_params(),
                                      verbose=True)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = max(config.kv_cache_tokens, config.context_window)
        params.n_batch = params.n_ubatch = n_batch
        params.n_threads = params.n_threads_batch = threads
        params.n_seq_max = n_slots
        # One pool of cells for all sequences: memory is bounded by kvCacheTokens however
        # the documents' prompts are sized, and candidates can share their prompt's cells.
        params.kv_unified = True
        params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
                                  if config.flash_attention is FlashAttention.ON
                                  else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        params.no_perf = True
        ctx = _internals.LlamaContext(model=model, params=params, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc
    return model, ctx


@dataclass
class _LoadedDrafter:
    """The draft model, its context and the drafter over them (closed with the backend)."""

    model: Any
    ctx: Any
    drafter: ModelDrafter

    def close(self) -> None:
        self.drafter.close()
        self.ctx.close()
        self.model.close()


# Tokens whose ids must agree between a model and its draft model: a draft is a list of ids.
_VOCAB_PROBE = "def f(x):\n    return [y for y in x if y != 'é']  # <|fim_middle|>\n"


def _load_drafter(llama_cpp: Any, config: Config, cache_dir: Path, progress: Any,
                  vocab: GgufVocab, special_ids: frozenset[int], n_slots: int, n_batch: int,
                  threads: int) -> _LoadedDrafter:
    """The ``draftModel``, checked to share the model's tokenizer."""
    from server.model_assets import resolve_model

    source = resolve_model(config.draft_model, cache_dir, progress)
    if source.format is not ModelFormat.GGUF:
        raise ModelError(f"draftModel must be a .gguf file or a packaged model, not "
                         f"{source.path}")
    if progress:
        progress(f"Loading the draft model {source.display_name}")
    model, ctx = _open(llama_cpp, source.path, config, n_slots, n_batch, threads)
    try:
        dvocab = GgufVocab(model)
        same = (dvocab.n_vocab == vocab.n_vocab
                and dvocab.encode(_VOCAB_PROBE, special=True)
                == vocab.encode(_VOCAB_PROBE, special=True)
                and dvocab.specials()[0] == special_ids)
        if not same:
            raise ModelError(f"draftModel {source.display_name} does not share the model's "
                             "tokenizer; a draft model must come from the same family")
        runner = LlamaCppRunner(llama_cpp, ctx.ctx, dvocab.n_vocab, n_slots, n_batch,
                                min(config.context_window, int(llama_cpp.llama_n_ctx(ctx.ctx))))
    except BaseException:
        ctx.close()
        model.close()
        raise
    logger.info("draft model ready: %s (up to %d tokens a draft)", source.display_name,
                config.draft_tokens)
    return _LoadedDrafter(model, ctx, ModelDrafter(runner, special_ids, source.display_name))


def _piece(llama_cpp: Any, vocab: Any, token: int) -> bytes:
    """The bytes of one token (special tokens as their text), whatever their length."""
    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, True)
        if n >= 0:
            return buf.raw[:n]
        size = -n  # too small: llama.cpp says how many bytes it needs


def _file_type(model: Any) -> str:
    """The GGUF's quantization as llama.cpp describes it (e.g. 'Q4_K - Medium')."""
    buf = ctypes.create_string_buffer(128)
    try:
        import llama_cpp

        n = llama_cpp.llama_model_desc(model.model, buf, len(buf))
        desc = buf.value.decode("utf-8", "replace") if n > 0 else ""
    except (AttributeError, OSError):
        desc = ""
    return desc.split(" ", 2)[-1] if desc else "gguf"
