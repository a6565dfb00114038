"""The completion service: one pipeline from a document snapshot to ranked suggestions.

The LSP handlers (``server/lsp.py``) and the test generator (``server/testgen_lsp.py``) call only
this class. It owns everything around the pure stages of ``server/stages.py``:

- the model's life: loading on a worker thread (with progress), reloading when a setting that
  needs it changes, the state a request waits for;
- the worker thread that builds prompts and post-processes (one: prompt building tokenizes, and
  2 cores are not worth sharing), while the generator's own thread decodes;
- debounce of automatic requests, the request cache, and in-flight cancellation: a newer request
  for a document cancels the older one, and a cancelled request stops at its next decoding step;
- the per-document state, all of it freed by :meth:`close_document`;
- mapping failures to :class:`CompletionFailed` with a message for the user, decided by
  exception type (``GenerationOutOfMemory``, ``ModelError``), never by message text.

Life of a request (:meth:`complete`): context → cache (on the event loop: answers that need no
model skip the queue and the debounce) → debounce → prompt (worker) → generate (generator) →
post-process and rank (worker) → cache.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from server.backends.base import (
    CancelledError,
    CancelToken,
    GenerationOutOfMemory,
    GenerationRequest,
)
from server.backends.loader import load_backend
from server.cache import CompletionCache
from server.config import Config, ConstraintMode, PrefetchMode, RepoContextMode, RerankMode
from server.context import CursorContext
from server.debounce import Debouncer
from server.failover import queue_depth
from server.generation import Generator, LocalGenerator
from server.metrics import CacheMetrics, rss_bytes
from server.model_assets import ModelError
from server.repo_context import repo_tokens
from server.rerank import Reranker
from server.stages import (
    CompletionOutcome,
    CompletionQuery,
    Plan,
    RepoPreamble,
    Source,
    Trigger,
    cache_key,
    candidates_of,
    context_stage,
    next_window_stage,
    outcome_of,
    postprocess_stage,
    prefetch_stage,
    prompt_stage,
    rank_stage,
    request_settings_key,
)
from server.workspace import RepoContext, WorkspaceLimits

_UNRANKED = Reranker(RerankMode.OFF)

if TYPE_CHECKING:
    from grammar_constraints.factory import ConstraintFactory

logger = logging.getLogger(__name__)

T = TypeVar("T")
_LAST_OUTCOMES = 256  # documents whose last completion figures pingti/status can report
# Prefetch the prompt's next window once it would jump within this many more typed tokens
# (about two lines of code): time enough to evaluate it while the user types them.
NEXT_WINDOW_MARGIN = 64
# Prefetches that come up while the user types (the next window, a switch seen as an edit in
# another file) start only once the typing paused this long: a chunk running when the next key
# arrives would delay that key's request (typing replay, BENCHMARKS.md). A key drops them.
TYPING_IDLE_S = 0.5


class ModelState(enum.Enum):
    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class CompletionFailed(Exception):
    """A request that was valid but could not be carried out; the message is for the user."""


class Progress(Protocol):
    """Where long work reports (the LSP layer: work-done progress)."""

    def report(self, message: str, percentage: int | None = None) -> None: ...


Notify = Callable[[str, bool], None]  # (message, is_error): a message for the user


@dataclass
class Loaded:
    """What loading produces: the generator, and the syntax constraint's factory for its
    tokenizer (None: no constraint with this generator)."""

    generator: Generator
    constraints: ConstraintFactory | None


# Builds the generator for a configuration on the worker thread, reporting progress messages;
# raises ModelError with a message for the user. The seam where another kind of generator
# (a remote engine) is chosen.
Loader = Callable[[Config, Callable[[str], None]], Loaded]


def load_configured(config: Config, report: Callable[[str], None]) -> Loaded:
    """The ``backends`` setting's generators behind failover (unset: the local model alone;
    server/failover.py)."""
    from server.failover import load_generator

    return load_generator(config, report)


def load_local(config: Config, report: Callable[[str], None]) -> Loaded:
    """The in-process generator: the configured backend on the batching model thread."""
    from grammar_constraints.factory import ConstraintFactory

    backend = load_backend(config, report)
    generator = LocalGenerator(backend, config.max_batch_size, config.batch_timeout_ms / 1000)
    return Loaded(generator, ConstraintFactory(backend.decode, backend.vocab_size,
                                               backend.decoder.stop_ids))


class CompletionService:
    def __init__(self, config: Config, notify: Notify | None = None,
                 loader: Loader = load_configured,
                 on_backend: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self._notify = notify or (lambda message, error: None)
        # A backend went down or came back (server/failover.py): the LSP layer tells the editor.
        self._on_backend = on_backend
        self._loader = loader
        # One worker: prompts and post-processing are CPU work on 2 cores; the model decodes on
        # the generator's own thread meanwhile.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pingti-worker")
        # Long background jobs (test generation) get their own thread, so completions go on.
        self.jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pingti-jobs")
        self.state = ModelState.NOT_LOADED
        self.load_error = ""
        self._loaded: Loaded | None = None
        self._load_task: asyncio.Task[None] | None = None
        self.cache = CompletionCache(config.cache_entries)
        self.cache_metrics = CacheMetrics()
        self.debouncer = Debouncer(config.debounce_ms / 1000)
        self.inflight: dict[str, CancelToken] = {}
        # The last completion's figures per document, oldest first (pingti/status).
        self.last_outcomes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._specials: list[str] = []
        self._reranker: Reranker | None = None
        self._reranker_key: tuple[Any, ...] = ()
        # The latest focus (the file and cursor the user moved to): prefetched when the model
        # is idle; kept while the model loads. Only the latest counts (_focus_seq).
        self._focus: CompletionQuery | None = None
        self._focus_seq = 0
        # Repository context: the other open documents and the workspace (the LSP layer tells
        # it the workspace folders and the documents' comings and goings).
        self.repo = RepoContext()

    @property
    def generator(self) -> Generator | None:
        return self._loaded.generator if self._loaded is not None else None

    # --- settings and the model's life ------------------------------------------------------

    def apply_config(self, config: Config) -> bool:
        """Take new settings. Returns True when they need the model loaded again (the caller
        starts that, with progress); others apply at once."""
        old, self.config = self.config, config
        self.debouncer.max_delay_s = config.debounce_ms / 1000
        if self.state is ModelState.NOT_LOADED:
            return False
        if old.model_key() != config.model_key() or self.state is ModelState.FAILED:
            return True
        # Applied right away (not queued behind the worker): the cache fast path runs on the
        # event loop and must not answer with the old settings. Cache entries are keyed by the
        # settings, so a generation still running with the old ones cannot leak.
        self.cache.max_entries = config.cache_entries
        self.cache.clear()
        if config.prefetch is PrefetchMode.OFF and self._loaded is not None:
            self._loaded.generator.cancel_prefetch(None)
        if self._loaded is not None:
            self._loaded.generator.configure(config.max_batch_size,
                                             config.batch_timeout_ms / 1000)
        if self.state is ModelState.READY:
            self._start_repo_index()
        return False

    def _start_repo_index(self) -> None:
        """In ``workspace`` mode, index the workspace in the background once the model is
        ready (so the two never compete for the CPU at start-up); completions use what is
        indexed so far."""
        c = self.config
        if c.repo_context is RepoContextMode.WORKSPACE and c.repo_context_tokens > 0:
            self.repo.ensure_workspace(self._workspace_limits())

    def _workspace_limits(self) -> WorkspaceLimits:
        c = self.config
        return WorkspaceLimits(c.repo_max_files, c.repo_max_file_bytes, c.repo_exclude)

    def start_loading(self, progress: Callable[[Config], Awaitable[Progress | None]] | None = None,
                      done: Callable[[], None] | None = None) -> None:
        """Load (or reload) the model for the current settings on the worker; requests wait.
        ``progress`` opens the client's progress report; ``done`` closes it."""
        for token in self.inflight.values():
            token.cancel("model reload")
        self.state = ModelState.LOADING
        self._load_task = asyncio.ensure_future(self._load(self.config, progress, done))

    async def _load(self, config: Config,
                    progress: Callable[[Config], Awaitable[Progress | None]] | None,
                    done: Callable[[], None] | None) -> None:
        loop = asyncio.get_running_loop()
        reporter = await progress(config) if progress is not None else None

        def report(message: str) -> None:
            logger.info("loading: %s", message)
            if reporter is not None:
                loop.call_soon_threadsafe(reporter.report, message, None)

        def build() -> Loaded:
            if self._loaded is not None:
                self._loaded.generator.close()
                self._loaded = None
            return self._loader(config, report)

        try:
            loaded = await loop.run_in_executor(self.worker, build)
            check = getattr(loaded.generator, "check_all", None)
            if check is not None:  # engines found down start skipped
                loaded.generator.on_change = self._on_backend  # type: ignore[attr-defined]
                await check()
        except Exception as exc:  # noqa: BLE001 - a failed load is a message, not a crash
            if isinstance(exc, ModelError):
                error, prefix = str(exc), "model not available"
            else:
                logger.exception("model load failed")
                error, prefix = f"{type(exc).__name__}: {exc}", "model failed to load"
            self._notify(f"{prefix}: {error}", True)
            if config.model_key() == self.config.model_key():  # else a newer load is running
                self.state, self.load_error = ModelState.FAILED, error
        else:
            info = loaded.generator.info
            # Settings may have changed while loading; only a model-affecting change (which
            # started another load) makes this model stale.
            if config.model_key() == self.config.model_key():
                self._loaded, self.state, self.load_error = loaded, ModelState.READY, ""
                self._specials = sorted(loaded.generator.capabilities.special_tokens,
                                        key=len, reverse=True)
                self.apply_config(self.config)
                if self.config.constraints is ConstraintMode.SYNTAX and \
                        loaded.constraints is not None:
                    # The constraint's tables (0.3 s, then 20-75 ms for each lexical mode a
                    # sequence reaches) are built now rather than in the first requests.
                    loop.run_in_executor(self.jobs, self.warm_constraints, loaded.constraints)
                if self.config.candidates > 1:
                    # The encoder (torch, a few seconds) loads now rather than on the first
                    # explicit request.
                    loop.run_in_executor(self.jobs, self.warm_reranker)
                if self._focus is not None:  # a file was opened while the model loaded
                    self.focus(self._focus)
            else:
                loaded.generator.close()
            logger.info("model ready: %s on %s (%s, %s) in %.1fs", info.name, info.device,
                        info.quantization, info.dtype, info.load_s)
        finally:
            if done is not None:
                done()

    async def ready(self) -> Generator:
        """The generator, once the model is loaded; raises CompletionFailed if it could not."""
        if self._load_task is None:
            self.start_loading()
        assert self._load_task is not None
        while True:
            task = self._load_task
            await asyncio.shield(task)
            if task is self._load_task:  # not replaced by a reload meanwhile
                break
        if self._loaded is None:
            raise CompletionFailed(f"pingti: model not available: {self.load_error}")
        return self._loaded.generator

    # --- completion ------------------------------------------------------------------------

    async def complete(self, query: CompletionQuery) -> CompletionOutcome | None:
        """Complete at the query's cursor. None when a newer request for the same document (or
        a reload) superseded this one. Raises CompletionFailed with a message for the user."""
        await self.ready()
        loaded = self._loaded
        assert loaded is not None
        uri = query.uri
        token = CancelToken()
        if (older := self.inflight.get(uri)) is not None:
            older.cancel("superseded by a newer request")
        self.inflight[uri] = token
        loop = asyncio.get_running_loop()
        delay = (self.debouncer.delay(uri, loop.time())
                 if query.trigger is Trigger.AUTOMATIC else 0.0)
        try:
            outcome = await self._run(query, loaded, token, delay)
        except asyncio.CancelledError:
            token.cancel("$/cancelRequest")
            raise
        except CancelledError:
            return None  # superseded: the newer request answers
        except GenerationOutOfMemory as exc:
            raise CompletionFailed(f"pingti: out of memory while generating ({exc}); lower "
                                   "contextTokens or use quantization") from exc
        except Exception as exc:  # noqa: BLE001 - one request fails, the server serves on
            logger.exception("generation failed")
            raise CompletionFailed(f"pingti: generation failed: {exc}") from exc
        finally:
            if self.inflight.get(uri) is token:
                del self.inflight[uri]
        if outcome is not None:
            self._remember(uri, outcome)
        return outcome

    async def _run(self, query: CompletionQuery, loaded: Loaded, token: CancelToken,
                   delay: float) -> CompletionOutcome | None:
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        # The cursor context is built once, for both cache checks and the prompt.
        ctx = context_stage(query)
        n = candidates_of(self.config, query.trigger, loaded.generator.capabilities)
        if (quick := self._from_cache(query.uri, ctx, t0, n)) is not None:
            self.cache_metrics.hit()
            return quick
        if delay > 0:
            await asyncio.sleep(delay)
            if token.cancelled:  # the user typed on: the newer request answers
                return None
        planned = await loop.run_in_executor(self.worker, self._plan, query.uri, ctx, loaded,
                                             token, t0, n)
        if isinstance(planned, CompletionOutcome):
            self.cache_metrics.hit()
            return planned
        self.cache_metrics.miss()
        # The generator batches this request's candidates (they share the prompt's KV cache)
        # with the requests of other documents.
        results = await loaded.generator.generate(planned.requests, token)
        if token.cancelled:
            raise CancelledError(token.reason)
        outcome = await loop.run_in_executor(self.worker, self._finish, query.uri, planned,
                                             results, t0, token)
        self._prefetch_next_window(planned, loaded)
        return outcome

    def _from_cache(self, uri: str, ctx: CursorContext, t0: float,
                    n: int = 1) -> CompletionOutcome | None:
        """The answer if it needs no model (typed through, or an identical request).

        NOTE: runs on the event loop and on the worker; it only reads and updates the cache's
        dicts, whose single operations are atomic under the GIL."""
        skey = request_settings_key(self.config, self._repo_version(uri))
        rest = self.cache.typed_through(uri, ctx.prefix, ctx.suffix, skey)
        if rest is not None:
            self.cache.remember_shown(uri, ctx.prefix, ctx.suffix, rest, skey)
            logger.info("completion uri=%s source=typed_through chars=%d", uri, len(rest))
            return CompletionOutcome(rest, ctx.mode, Source.TYPED_THROUGH,
                                     total_s=time.perf_counter() - t0)
        # A request for n candidates is answered by the list a request for n left.
        hit = self.cache.get_all(cache_key(ctx, skey, n))
        if hit is not None:
            self.cache.remember_shown(uri, ctx.prefix, ctx.suffix, hit[0], skey)
            logger.info("completion uri=%s source=cache chars=%d", uri, len(hit[0]))
            return CompletionOutcome(hit[0], ctx.mode, Source.CACHE,
                                     total_s=time.perf_counter() - t0, alternatives=hit[1:])
        return None

    def _plan(self, uri: str, ctx: CursorContext, loaded: Loaded, token: CancelToken,
              t0: float, n: int) -> Plan | CompletionOutcome:
        """Worker: the prompt stage (the cache is checked again: another request may have
        filled it while this one waited)."""
        if token.cancelled:  # cancelled while queued behind another request
            raise CancelledError(token.reason)
        if (cached := self._from_cache(uri, ctx, t0, n)) is not None:
            return cached
        gen = loaded.generator
        return prompt_stage(ctx, uri, self.config, gen.capabilities, gen.tokenizer,
                            loaded.constraints, n, self._repo_preamble(uri, ctx, loaded),
                            self._repo_version(uri))

    def _repo_version(self, uri: str) -> str:
        """With repository context on, the other files' state (part of the cache's key)."""
        c = self.config
        if c.repo_context is RepoContextMode.OFF or c.repo_context_tokens <= 0:
            return ""
        return self.repo.version(uri)

    def _repo_preamble(self, uri: str, ctx: CursorContext, loaded: Loaded
                       ) -> RepoPreamble | None:
        """The repository context of a prompt at ``ctx`` (None when it is off)."""
        config = self.config
        if config.repo_context is RepoContextMode.OFF or config.repo_context_tokens <= 0:
            return None
        if config.repo_context is RepoContextMode.WORKSPACE:
            self.repo.ensure_workspace(self._workspace_limits())
        tok = loaded.generator.tokenizer
        marks = repo_tokens(tok)
        text, offset = ctx.prefix + ctx.suffix, len(ctx.prefix)

        def preamble(window: tuple[int, int]) -> list[int]:
            return self.repo.preamble(uri, text, offset, ctx.language, window,
                                      config.repo_context, config.repo_context_tokens,
                                      tok.encode, marks, config.repo_recent_edits)
        return preamble

    def reranker(self) -> Reranker:
        """The reranker for the current settings (built again when they change)."""
        from server.rerank import reranker_for

        c = self.config
        path = self._loaded.generator.info.path if self._loaded is not None else ""
        key = (c.rerank, c.rerank_encoder, c.sandbox, c.rerank_timeout_ms, c.threads, path)
        if self._reranker is None or key != self._reranker_key:
            self._reranker, self._reranker_key = reranker_for(c, path), key
        return self._reranker

    @staticmethod
    def warm_constraints(constraints: ConstraintFactory) -> None:
        """Build the syntax constraint's tables (jobs thread); a failure here is only logged:
        the first request builds them again and reports its own error."""
        try:
            constraints.warm()
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not prepare the syntax constraint: %s", exc)

    def warm_reranker(self) -> None:
        """Load the reranker's encoder (jobs thread), so no request waits for it."""
        try:
            self.reranker().encoder()
        except Exception as exc:  # noqa: BLE001 - ranking falls back without it
            logger.warning("could not load the rerank encoder: %s", exc)

    def _finish(self, uri: str, plan: Plan, results: list[Any], t0: float,
                token: CancelToken | None = None) -> CompletionOutcome:
        """Worker: post-process every candidate, rank them, cache the ranked list."""
        candidates = [postprocess_stage(r, plan, self._specials, i)
                      for i, r in enumerate(results)]
        t1 = time.perf_counter()
        # A single candidate is not ranked: building the reranker (it probes the sandbox once)
        # stays off the path of requests while typing.
        reranker = self.reranker() if len(candidates) > 1 else _UNRANKED
        ranked, ranking = rank_stage(candidates, plan.ctx, reranker,
                                     token.event if token is not None else None,
                                     syntax_first=plan.constraints is not None)
        rerank_s = time.perf_counter() - t1
        outcome = outcome_of(plan, candidates, ranked, ranking, time.perf_counter() - t0,
                             rerank_s)
        ctx = plan.ctx
        if len(candidates) > 1:
            logger.info("rerank uri=%s candidates=%d distinct=%d examples=%d seconds=%s "
                        "rerank=%.3fs", uri, len(candidates), len(ranked), ranking.examples,
                        ranking.seconds, rerank_s)
        # The cache keeps the ranked list; typing through follows the first suggestion.
        self.cache.put(plan.key, (outcome.suggestion, *outcome.alternatives), uri)
        self.cache.remember_shown(uri, ctx.prefix, ctx.suffix, outcome.suggestion,
                                  plan.settings_key)
        logger.info(
            "completion uri=%s mode=%s prompt_tokens=%d gen_tokens=%d prefill=%.3fs "
            "decode=%.3fs total=%.3fs finish=%s chars=%d reused_tokens=%d", uri, ctx.mode.value,
            outcome.prompt_tokens, outcome.generated_tokens, outcome.prefill_s,
            outcome.decode_s, outcome.total_s, outcome.finish, len(outcome.suggestion),
            outcome.reused_tokens)
        return outcome

    def _remember(self, uri: str, outcome: CompletionOutcome) -> None:
        """Keep the figures of the last answer per document for ``pingti/status`` (benchmark
        clients read token counts and timings there; LSP results cannot carry them)."""
        self.last_outcomes.pop(uri, None)
        self.last_outcomes[uri] = {
            "source": outcome.source.value, "mode": outcome.mode.value,
            "candidates": 1 + len(outcome.alternatives),
            "promptTokens": outcome.prompt_tokens, "generatedTokens": outcome.generated_tokens,
            "reusedTokens": outcome.reused_tokens, "prefillS": round(outcome.prefill_s, 4),
            "decodeS": round(outcome.decode_s, 4), "totalS": round(outcome.total_s, 4),
            "finish": outcome.finish, "syntax": outcome.syntax or None,
            "ranking": list(outcome.ranking) or None, "rerankS": round(outcome.rerank_s, 4)}
        while len(self.last_outcomes) > _LAST_OUTCOMES:
            self.last_outcomes.popitem(last=False)

    # --- prefetch ----------------------------------------------------------------------------

    @property
    def focused_uri(self) -> str | None:
        return self._focus.uri if self._focus is not None else None

    def focus(self, query: CompletionQuery, delay_s: float = 0.0) -> None:
        """The user opened or moved to ``query.uri`` with the cursor at ``query.offset``
        (didOpen, ``pingti/focus``, an edit in another file): evaluate the prompt a request
        there would use while the model is idle, so that request only decodes.

        Only the latest focus counts: an older one not yet turned into a prompt is dropped,
        and the generator replaces a pending prefetch (server/batching.py)."""
        self._focus = query
        self._focus_seq += 1
        if self.config.prefetch is PrefetchMode.OFF or self._loaded is None or \
                self.state is not ModelState.READY or query.uri in self.inflight:
            return  # (a request in flight evaluates its own prompt)
        future = self.worker.submit(self._prefetch_focus, query, self._loaded, self._focus_seq,
                                    delay_s)
        future.add_done_callback(_log_failure)

    def edited(self, uri: str) -> None:
        """``uri`` changed (a keystroke): a prefetch still pending for it evaluates an out of
        date prompt, and would take CPU time from handling the edits; the completion requests
        that follow the typing evaluate their own prompts."""
        if self._loaded is not None:
            cancel = getattr(self._loaded.generator, "cancel_prefetch", None)
            if cancel is not None:
                cancel(uri)

    def _prefetch_focus(self, query: CompletionQuery, loaded: Loaded, seq: int,
                        delay_s: float) -> None:
        """Worker: the prompt at the focus, handed to the generator unless a newer focus came."""
        if seq != self._focus_seq or loaded is not self._loaded:
            return
        gen = loaded.generator
        ctx = context_stage(query)
        ids = prefetch_stage(ctx, self.config, gen.capabilities, gen.tokenizer,
                             self._repo_preamble(query.uri, ctx, loaded))
        if seq == self._focus_seq and loaded is self._loaded:
            gen.prefetch(ids, query.uri, delay_s)

    def _prefetch_next_window(self, plan: Plan, loaded: Loaded) -> None:
        """After a model answer: if the prompt's aligned start is about to move (the text
        before the cursor nearly fills its budget), evaluate the next window's beginning in
        idle time, so the request after the jump is not a cold prefill."""
        if self.config.prefetch is PrefetchMode.OFF or loaded is not self._loaded:
            return
        caps = loaded.generator.capabilities
        if not plan.requests:
            return
        preamble = list(plan.requests[0].prompt_ids[:plan.repo_tokens])
        prompt = list(plan.requests[0].prompt_ids[plan.repo_tokens:])
        room = self.config.context_tokens * self.config.prefix_share
        before = prompt.index(caps.fim_ids[1]) if caps.fim_ids and caps.fim_ids[1] in prompt \
            else len(prompt)
        if before + NEXT_WINDOW_MARGIN < room:
            return  # far from the jump: nothing to prepare (and no tokenizing)
        uri, ctx, config = plan.requests[0].cache_key, plan.ctx, self.config

        def build() -> None:
            ids = next_window_stage(ctx, config, caps, loaded.generator.tokenizer,
                                    NEXT_WINDOW_MARGIN, preamble)
            if ids and loaded is self._loaded and (self._focus is None or
                                                   self._focus.uri == uri):
                loaded.generator.prefetch(ids, uri, TYPING_IDLE_S)

        self.worker.submit(build).add_done_callback(_log_failure)

    # --- documents -------------------------------------------------------------------------

    def close_document(self, uri: str) -> None:
        """The client closed ``uri``: cancel its request and free everything kept for it
        (cached answers, debounce rhythm, last figures, its KV cache)."""
        if (token := self.inflight.pop(uri, None)) is not None:
            token.cancel("document closed")
        if self._focus is not None and self._focus.uri == uri:
            self._focus = None
            self._focus_seq += 1
        self.edited(uri)  # its pending prefetch goes too
        self.cache.forget(uri)
        self.debouncer.forget(uri)
        self.last_outcomes.pop(uri, None)
        if self._loaded is not None:
            self._loaded.generator.forget(uri)
            self._loaded.generator.forget(testgen_cache_key(uri))

    # --- plain text generation (the test generator) ---------------------------------------

    async def generate_text(self, prompt: str, max_new_tokens: int, cancel: CancelToken,
                            cache_key: str | None = None) -> str:
        """Greedy text for a chat-style prompt (special tokens in ``prompt`` are tokens),
        cut from the front to fit the context window."""
        gen = await self.ready()
        ids = gen.tokenizer.encode(prompt, special=True)
        window = gen.capabilities.context_window
        if window and len(ids) + max_new_tokens > window:
            max_new_tokens = max(64, window - len(ids))
            ids = ids[-(window - max_new_tokens):]
        request = GenerationRequest(ids, max_new_tokens, temperature=0.0, cache_key=cache_key,
                                    logprobs=False)
        try:
            (result,) = await gen.generate([request], cancel)
        except GenerationOutOfMemory as exc:
            raise CompletionFailed(f"pingti: out of memory while generating ({exc})") from exc
        if cancel.cancelled:
            raise CancelledError(cancel.reason)
        return result.text

    async def run_job(self, job: Callable[[], T]) -> T:
        """Run a long blocking job (test generation) on the jobs thread."""
        return await asyncio.get_running_loop().run_in_executor(self.jobs, job)

    # --- status and shutdown ---------------------------------------------------------------

    def status(self, uri: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state.value}
        if uri is not None:
            out["lastCompletion"] = self.last_outcomes.get(uri)
        out["repoContext"] = {"mode": self.config.repo_context.value, **self.repo.status()}
        if uri is not None:
            out["repoContext"]["lastChunks"] = self.repo.last_chunks.get(uri, [])
        if self.load_error:
            out["error"] = self.load_error
        if self._loaded is not None:
            gen = self._loaded.generator
            info = gen.info
            out["model"] = {"name": info.name, "backend": info.backend, "device": info.device,
                            "quantization": info.quantization,
                            "contextWindow": info.context_window}
            stats = gen.stats()
            out["batching"] = stats
            backends = getattr(gen, "backends", None)
            if backends is not None:
                out["backends"] = backends()
            out["metrics"] = {"cacheHitRate": self.cache_metrics.rate,
                              "queueDepth": queue_depth(stats), "rssBytes": rss_bytes()}
        return out

    def cancel_all(self, reason: str) -> None:
        for token in self.inflight.values():
            token.cancel(reason)

    def close(self) -> None:
        self.cancel_all("shutdown")
        self.repo.close()
        if self._loaded is not None:
            self._loaded.generator.close()
            self._loaded = None


def _log_failure(future: Any) -> None:
    """Background work (prefetch) that failed is logged, never raised anywhere."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.warning("prefetch failed: %s", exc)


def testgen_cache_key(uri: str) -> str:
    """The KV-cache key of a document's test generation (kept apart from its completions)."""
    return f"testgen:{uri}"
