"""The completion path, from document text to suggestion, with no LSP in it.

document → context and mode (tree-sitter) → cache → FIM prompt within the token budget →
generate (stopping at the end of the line/block, cancellable every step) → post-process → cache.

:class:`CompletionEngine` is not thread-safe by design: the server calls :meth:`prepare` and
:meth:`finish` on one worker thread; the model itself runs on the batch scheduler's thread
(``server/batching.py``), so requests for several documents decode together.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.backends.base import (
    CancelledError,
    CancelToken,
    GenerationRequest,
    GenerationResult,
    ModelBackend,
)
from server.batching import BatchScheduler
from server.cache import CompletionCache, request_key
from server.config import Backend, Config, ConstraintMode, Device
from server.context import CompletionMode, CursorContext, build_context
from server.model_assets import ModelFormat, ModelSource, cache_root, resolve_model
from server.postprocess import postprocess, prompt_prefix, should_stop, strip_cursor_indent
from server.prompt import block_suffix, build_prompt

logger = logging.getLogger(__name__)


class Source(enum.Enum):
    MODEL = "model"
    CACHE = "cache"
    TYPED_THROUGH = "typed_through"


@dataclass(frozen=True)
class CompletionOutcome:
    suggestion: str  # '' when there is nothing worth showing
    mode: CompletionMode
    source: Source
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0
    finish: str = ""
    # Prompt tokens served from the backend's KV cache instead of being evaluated again.
    reused_tokens: int = 0
    # Further suggestions when ``candidates`` > 1 (sampled with the next seeds), in seed order;
    # '' where a candidate had nothing worth showing. ``generated_tokens`` counts all of them.
    alternatives: tuple[str, ...] = ()
    # The syntax constraint's figures (time spent, tokens refused), when it ran.
    syntax: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class PreparedCompletion:
    """A completion that needs the model: its request, and what finishing it needs."""

    uri: str
    ctx: CursorContext
    key: str  # request-cache key
    settings_key: str
    request: GenerationRequest
    t0: float
    # Fresh logits processors for one more sequence (each candidate needs its own: the syntax
    # constraint follows its sequence); the constraints made so far, for their figures.
    processors: Callable[[], tuple[Any, ...]] = lambda: ()
    constraints: list[Any] = dataclasses.field(default_factory=list)


def load_backend(config: Config, progress: Callable[[str], None] | None = None) -> ModelBackend:
    """Build the backend the config asks for. Raises ModelError with a user-facing message."""
    if config.backend is Backend.FAKE:
        from server.backends.fake import FakeBackend

        return FakeBackend(token_delay=config.fake_token_delay)
    cache_dir = cache_root(config.cache_dir)
    source = resolve_model(config.model, cache_dir, progress)
    if resolve_backend(config, source) is Backend.LLAMA_CPP:
        from server.backends.llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend.load(source, config, cache_dir, progress)
    from server.backends.transformers_backend import TransformersBackend

    return TransformersBackend.load(source, config, cache_dir, progress)


def resolve_backend(config: Config, source: ModelSource) -> Backend:
    """AUTO: transformers (bitsandbytes 4-bit) on CUDA; llama.cpp on a CPU for a GGUF model."""
    if config.backend is not Backend.AUTO:
        return config.backend
    if config.device is Device.CUDA or (config.device is Device.AUTO and _cuda_available()):
        return Backend.TRANSFORMERS
    if source.format is ModelFormat.GGUF and _llama_cpp_available():
        return Backend.LLAMA_CPP
    return Backend.TRANSFORMERS


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


class CompletionEngine:
    def __init__(self, backend: ModelBackend, config: Config, batching: bool = False) -> None:
        self.backend = backend
        self.config = config
        # The model thread that batches requests (the server's path); None: complete() runs
        # the model on the calling thread (benchmarks, selftest).
        self.scheduler: BatchScheduler | None = None
        if batching:
            self.scheduler = BatchScheduler(backend.decoder, config.max_batch_size,
                                            config.batch_timeout_ms / 1000)
        self.cache = CompletionCache(config.cache_entries)
        fim = backend.info.fim
        ids = None
        if fim is not None:
            parts = (backend.token_id(fim.prefix), backend.token_id(fim.suffix),
                     backend.token_id(fim.middle))
            if all(p is not None for p in parts):
                ids = (parts[0], parts[1], parts[2])
        self._fim_ids: tuple[int, int, int] | None = ids  # type: ignore[assignment]
        self._specials = sorted(backend.info.special_tokens, key=len, reverse=True)
        self._syntax_table: Any = None

    def _final(self, result: GenerationResult, prepared: PreparedCompletion) -> str:
        """Post-processed text; with the syntax constraint, cut back to what leaves the
        document with no more syntax errors than before (the suffix counts: FIM)."""
        ctx = prepared.ctx
        text = postprocess(strip_cursor_indent(result.text, ctx), ctx, self._specials)
        if prepared.constraints and text:
            from grammar_constraints.finish import fit

            text = fit(ctx.prefix, text, ctx.suffix, ctx.language)
        return text

    def update_config(self, config: Config) -> None:
        """Apply settings that do not need a reload (token budgets, sampling, cache size)."""
        self.config = config
        self.cache.max_entries = config.cache_entries
        self.cache.clear()
        if self.scheduler is not None:
            self.scheduler.configure(config.max_batch_size, config.batch_timeout_ms / 1000)

    def close(self) -> None:
        """Stop the model thread (running requests are cancelled), then free the model."""
        if self.scheduler is not None:
            self.scheduler.close()
        self.backend.close()

    def _settings_key(self) -> str:
        c = self.config
        return repr((c.context_tokens, c.prefix_share, c.max_tokens_single_line,
                     c.max_tokens_multi_line, c.temperature, c.top_p, c.seed, self.candidates(),
                     c.suffix_tokens, c.align_lines))

    def candidates(self) -> int:
        """Sequences a model request samples: greedy decoding would repeat the same one."""
        return self.config.candidates if self.config.temperature > 0 else 1

    def requests(self, prepared: PreparedCompletion) -> list[GenerationRequest]:
        """The request of each candidate: the same prompt (its KV cells are shared), seeds
        ``seed``, ``seed + 1``, ..."""
        base = prepared.request
        return [base] + [dataclasses.replace(base, seed=(base.seed + i) % 2**31,
                                             logits_processors=prepared.processors())
                         for i in range(1, self.candidates())]

    def cached(self, uri: str, text: str, offset: int, language: str,
               ctx: CursorContext | None = None) -> CompletionOutcome | None:
        """The answer if it needs no model call (typed-through or identical request), else None.
        ``ctx`` is :func:`build_context`'s result when the caller has it already.

        NOTE: called on the event loop while the worker may be inside :meth:`complete`; it only
        reads and updates the cache's dicts, whose single operations are atomic under the GIL.
        """
        t0 = time.perf_counter()
        ctx = ctx or build_context(text, offset, language)
        return self._from_cache(uri, ctx, self._settings_key(), t0)

    def _from_cache(self, uri: str, ctx: CursorContext, skey: str, t0: float
                    ) -> CompletionOutcome | None:
        rest = self.cache.typed_through(uri, ctx.prefix, ctx.suffix, skey)
        if rest is not None:
            self.cache.remember_shown(uri, ctx.prefix, ctx.suffix, rest, skey)
            logger.info("completion uri=%s source=typed_through chars=%d", uri, len(rest))
            return CompletionOutcome(rest, ctx.mode, Source.TYPED_THROUGH,
                                     total_s=time.perf_counter() - t0)
        key = request_key(ctx.prefix, ctx.suffix, ctx.mode.value, skey)
        # The cache holds one suggestion; asked for several, sample them again.
        hit = self.cache.get(key) if self.candidates() == 1 else None
        if hit is not None:
            self.cache.remember_shown(uri, ctx.prefix, ctx.suffix, hit, skey)
            logger.info("completion uri=%s source=cache chars=%d", uri, len(hit))
            return CompletionOutcome(hit, ctx.mode, Source.CACHE,
                                     total_s=time.perf_counter() - t0)
        return None

    def prepare(self, uri: str, text: str, offset: int, language: str,
                ctx: CursorContext | None = None) -> CompletionOutcome | PreparedCompletion:
        """Everything before the model: the cached answer if there is one (the cache is checked
        again: another request may have filled it meanwhile), else the request."""
        t0 = time.perf_counter()
        ctx = ctx or build_context(text, offset, language)
        skey = self._settings_key()
        cached = self._from_cache(uri, ctx, skey, t0)
        if cached is not None:
            return cached
        cfg = self.config
        suffix = block_suffix(ctx.suffix, _indent(ctx.line_prefix))
        max_new = (cfg.max_tokens_single_line if ctx.mode is CompletionMode.SINGLE_LINE
                   else cfg.max_tokens_multi_line)
        # Memory guard: the prompt and the generation must fit the context window; the prompt
        # budget shrinks to fit instead of failing.
        budget = cfg.context_tokens
        if self.backend.info.context_window:
            budget = max(16, min(budget, self.backend.info.context_window - max_new))
        prompt = build_prompt(prompt_prefix(ctx), suffix, self.backend.encode,
                              self.backend.info.fim, self._fim_ids, budget,
                              cfg.prefix_share, cfg.suffix_tokens, cfg.align_lines)
        constraints: list[Any] = []
        processors = self._processor_factory(ctx, language, constraints)
        request = GenerationRequest(
            prompt.ids, max_new, cfg.temperature, cfg.top_p, cfg.seed,
            stop=lambda g: should_stop(strip_cursor_indent(g, ctx), ctx), cache_key=uri,
            logits_processors=processors())
        key = request_key(ctx.prefix, ctx.suffix, ctx.mode.value, skey)
        return PreparedCompletion(uri, ctx, key, skey, request, t0, processors, constraints)

    def constrained(self, language: str) -> bool:
        """Does the syntax constraint apply to this LSP language id?"""
        cfg = self.config
        if cfg.constraints is not ConstraintMode.SYNTAX:
            return False
        from grammar_constraints.languages import LANGUAGE_IDS

        return LANGUAGE_IDS.get(language.lower()) in cfg.constraint_languages

    def syntax_table(self) -> Any:
        """The lexical table of this backend's vocabulary (built once, ~0.5 s)."""
        if self._syntax_table is None:
            from grammar_constraints.vocab import TokenTable

            t0 = time.perf_counter()
            stop = self.backend.decoder.stop_ids
            self._syntax_table = TokenTable(
                [self.backend.decode([i]) if i not in stop else ""
                 for i in range(self.backend.vocab_size)], stop)
            logger.info("syntax constraint table ready for %d tokens in %.2fs",
                        self.backend.vocab_size, time.perf_counter() - t0)
        return self._syntax_table

    def _processor_factory(self, ctx: CursorContext, language: str, made: list[Any]
                           ) -> Callable[[], tuple[Any, ...]]:
        if not self.constrained(language):
            return lambda: ()
        from grammar_constraints.languages import syntax_for
        from grammar_constraints.processor import SyntaxConstraint

        table = self.syntax_table()
        syntax = syntax_for(language.lower())

        def make() -> tuple[Any, ...]:
            # The constraint sees the document as the user will: the text before the cursor,
            # then the generation as it would be inserted (on an indentation-only line the
            # model writes the indentation itself, and the cursor's wins).
            constraint = SyntaxConstraint(
                table, ctx.prefix, lambda ids: strip_cursor_indent(self.backend.decode(ids), ctx),
                syntax)
            made.append(constraint)
            return (constraint,)

        return make

    def finish(self, prepared: PreparedCompletion, result: GenerationResult,
               *more: GenerationResult) -> CompletionOutcome:
        """Everything after the model: post-process, cache, log. ``more``: the results of the
        further candidates (:meth:`requests`)."""
        ctx, uri = prepared.ctx, prepared.uri
        suggestion = self._final(result, prepared)
        alternatives = tuple(self._final(r, prepared) for r in more)
        # The cache keeps the first suggestion: typing through it is what users do.
        self.cache.put(prepared.key, suggestion)
        self.cache.remember_shown(uri, ctx.prefix, ctx.suffix, suggestion, prepared.settings_key)
        outcome = CompletionOutcome(
            suggestion, ctx.mode, Source.MODEL, result.prompt_tokens,
            len(result.token_ids) + sum(len(r.token_ids) for r in more),
            result.prefill_s, max([result.decode_s] + [r.decode_s for r in more]),
            time.perf_counter() - prepared.t0,
            result.finish.value, int(result.extra.get("reused_tokens", 0)), alternatives,
            _constraint_stats(prepared.constraints))
        logger.info(
            "completion uri=%s mode=%s prompt_tokens=%d gen_tokens=%d prefill=%.3fs "
            "decode=%.3fs total=%.3fs finish=%s chars=%d reused_tokens=%d", uri, ctx.mode.value,
            outcome.prompt_tokens, outcome.generated_tokens, outcome.prefill_s,
            outcome.decode_s, outcome.total_s, outcome.finish, len(suggestion),
            outcome.reused_tokens)
        return outcome

    def complete(self, uri: str, text: str, offset: int, language: str,
                 cancel: CancelToken) -> CompletionOutcome:
        """One completion on the calling thread (the server batches through prepare/finish)."""
        prepared = self.prepare(uri, text, offset, language)
        if isinstance(prepared, CompletionOutcome):
            return prepared
        results = [self.backend.generate(r, cancel) for r in self.requests(prepared)]
        if cancel.cancelled:
            raise CancelledError(cancel.reason)
        return self.finish(prepared, *results)


def _constraint_stats(constraints: list[Any]) -> dict[str, float]:
    if not constraints:
        return {}
    out: dict[str, float] = {}
    for c in constraints:
        for k, v in c.stats().items():
            out[k] = out.get(k, 0.0) + v
    return out


def _indent(line_prefix: str) -> int:
    return len(line_prefix) - len(line_prefix.lstrip())
