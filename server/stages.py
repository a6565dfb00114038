"""The stages of a completion, as typed functions with no LSP, no threads and no model in them.

    context → prompt → generate → post-process → rank → cache

:class:`server.service.CompletionService` runs them in that order and owns everything around
them (worker thread, debounce, cancellation, errors). Each stage here is testable alone:

- **context** (:func:`context_stage`): the text around the cursor and whether the user wants
  a line or a block (``server/context.py``);
- **prompt** (:func:`prompt_stage`): the fill-in-the-middle prompt within the token budget and
  one :class:`GenerationRequest` per candidate, with the syntax constraint's processors when it
  applies (``server/prompt.py``, ``grammar_constraints``);
- **generate**: a :class:`server.generation.Generator` (the request-level seam);
- **post-process** (:func:`postprocess_stage`): cut the raw text where the user would stop
  (``server/postprocess.py``), and, under the syntax constraint, back to what leaves the document
  with no more syntax errors than before;
- **rank** (:func:`rank_stage`): drop empty and duplicate candidates and order the rest, best
  first (``server/rerank``);
- **cache**: the service stores the ranked suggestions (``server/cache.py``).

A new stage is a function here plus one line in ``CompletionService._run``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.backends.base import GenerationRequest, GenerationResult
from server.cache import request_key
from server.config import CandidatesWhen, Config, ConstraintMode
from server.context import CompletionMode, CursorContext, build_context
from server.generation import GeneratorCapabilities, Tokenizer
from server.languages import from_lsp_id
from server.postprocess import (
    postprocess,
    prompt_prefix,
    should_stop,
    strip_cursor_indent,
)
from server.prompt import Prompt, block_suffix, build_prompt, next_window_prefix
from server.rerank import Pick, Ranking, Reranker

if TYPE_CHECKING:
    from grammar_constraints.factory import ConstraintFactory, SequenceConstraints


class Trigger(enum.Enum):
    AUTOMATIC = "automatic"  # while typing: debounced, superseded by the next key
    INVOKED = "invoked"  # the user asked explicitly


class Source(enum.Enum):
    MODEL = "model"
    CACHE = "cache"
    TYPED_THROUGH = "typed_through"


@dataclass(frozen=True)
class CompletionQuery:
    """One completion request, as the LSP layer hands it over (a snapshot of the document)."""

    uri: str
    text: str
    offset: int  # code-point index of the cursor in ``text``
    language: str  # LSP language id ('' when unknown)
    trigger: Trigger = Trigger.INVOKED


@dataclass(frozen=True)
class Candidate:
    text: str  # post-processed; '' when there is nothing worth showing
    result: GenerationResult
    origin: int = 0  # its request's index in the plan: 0 first (greedy at temperature 0)
    greedy: bool = False


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
    # Further suggestions when ``candidates`` > 1, in rank order; '' where a candidate had
    # nothing worth showing. ``generated_tokens`` counts all of them.
    alternatives: tuple[str, ...] = ()
    # The syntax constraint's figures (time spent, tokens refused), when it ran.
    syntax: dict[str, float] = dataclasses.field(default_factory=dict)
    # Per suggestion, best first: which candidates produced it and its rank signals
    # (``pingti/status`` shows them; lsp-bench reads them).
    ranking: tuple[dict[str, object], ...] = ()
    rerank_s: float = 0.0


@dataclass(frozen=True)
class Plan:
    """What the prompt stage decided: the requests to generate, and what finishing needs."""

    ctx: CursorContext
    key: str  # request-cache key
    settings_key: str
    requests: tuple[GenerationRequest, ...]  # one per candidate, seeds seed, seed + 1, ...
    constraints: SequenceConstraints | None = None  # the syntax constraint's processors
    repo_tokens: int = 0  # the prompt's first tokens that are repository context


# --- context ---------------------------------------------------------------------------------

def context_stage(query: CompletionQuery) -> CursorContext:
    return build_context(query.text, query.offset, query.language)


# --- prompt ----------------------------------------------------------------------------------

# The syntax constraint lexes the text before the cursor and re-reads the statement around it on
# every token, and its final fit parses the document: beyond these sizes (a minified line, a
# generated multi-megabyte module) it steps aside rather than cost seconds a token.
CONSTRAINT_MAX_LINE_CHARS = 50_000
CONSTRAINT_MAX_PREFIX_CHARS = 256 * 1024


def _within_constraint_bounds(ctx: CursorContext) -> bool:
    return (len(ctx.line_prefix) + len(ctx.line_suffix) <= CONSTRAINT_MAX_LINE_CHARS
            and len(ctx.prefix) <= CONSTRAINT_MAX_PREFIX_CHARS)


def candidates_of(config: Config, trigger: Trigger, caps: GeneratorCapabilities) -> int:
    """Candidates a request decodes. On a CPU each extra one costs decoding time, so by
    default only explicit requests get several (BENCHMARKS.md, reranking latency); typing
    stays single and fast. On an accelerator they cost little and every request gets them."""
    n = config.candidates
    if n <= 1:
        return 1
    when = config.candidates_when
    if when is CandidatesWhen.ALWAYS or (when is CandidatesWhen.AUTO and caps.accelerated):
        return n
    return n if trigger is Trigger.INVOKED else 1


def settings_key(config: Config) -> str:
    """The settings a cached answer depends on."""
    c = config
    return repr((c.context_tokens, c.prefix_share, c.max_tokens_single_line,
                 c.max_tokens_multi_line, c.temperature, c.top_p, c.seed, c.suffix_tokens,
                 c.align_lines, c.sample_temperature, c.rerank.value, c.rerank_encoder))


def request_settings_key(config: Config, repo_version: str = "") -> str:
    """What a cached answer depends on besides the text around the cursor: the settings and,
    with repository context, the state of the other files (``RepoContext.version``): an answer
    that used another file's old text is not the answer once that file changed."""
    skey = settings_key(config)
    return f"{skey}|repo:{repo_version}" if repo_version else skey


def cache_key(ctx: CursorContext, skey: str, n: int = 1) -> str:
    """The request cache's key; ``n``: the candidates asked for (a list of four is not the
    answer to a request for one)."""
    return request_key(ctx.prefix, ctx.suffix, ctx.mode.value, f"{skey}|{n}")


def constrained(config: Config, language: str) -> bool:
    """Does the syntax constraint apply: on in the settings, and a listed language? (With a
    generator that runs no logits processors, a remote engine, only its final check and cut
    does: ``postprocess_stage``.)"""
    if config.constraints is not ConstraintMode.SYNTAX:
        return False
    lang = from_lsp_id(language)
    return lang is not None and lang.value in config.constraint_languages


# The repository context of a prompt (server/workspace.py, RepoContext.preamble bound to the
# request): given the cursor file's lines the prompt shows anyway, the tokens that go first.
RepoPreamble = Callable[[tuple[int, int]], list[int]]


def window_lines(ctx: CursorContext, prompt: Prompt) -> tuple[int, int]:
    """The lines of the cursor's file that the prompt shows (first, end exclusive)."""
    start = ctx.prefix.count("\n", 0, len(ctx.prefix) - len(prompt.prefix_text))
    below = ctx.suffix.count("\n", 0, len(prompt.suffix_text))
    return start, ctx.prefix.count("\n") + below + 1


def _in_file(ctx: CursorContext, config: Config, caps: GeneratorCapabilities,
             tokenizer: Tokenizer, repo: RepoPreamble | None) -> tuple[list[int], int]:
    """The prompt's ids: the repository context, if any, then the cursor file's FIM part;
    and how many of them are repository context."""
    max_new = _max_new(ctx, config)
    prompt = build_prompt(prompt_prefix(ctx), block_suffix(ctx.suffix, _indent(ctx.line_prefix)),
                          tokenizer.encode, caps.fim, caps.fim_ids,
                          _budget(config, caps, max_new, repo is not None), config.prefix_share,
                          config.suffix_tokens, config.align_lines)
    if repo is None:
        return prompt.ids, 0
    pre = repo(window_lines(ctx, prompt))
    return [*pre, *prompt.ids], len(pre)


def prompt_stage(ctx: CursorContext, uri: str, config: Config, caps: GeneratorCapabilities,
                 tokenizer: Tokenizer, constraints: ConstraintFactory | None,
                 n: int = 1, repo: RepoPreamble | None = None, repo_version: str = "") -> Plan:
    """The prompt and ``n`` requests: the first at ``temperature`` (greedy by default), the
    others sampled at ``sampleTemperature`` with seeds ``seed + i``. ``repo``: the repository
    context, placed before the cursor file's part; ``repo_version``: the state of the other
    files it was read from (part of the answer cache's key)."""
    skey = request_settings_key(config, repo_version)
    max_new = _max_new(ctx, config)
    ids, n_repo = _in_file(ctx, config, caps, tokenizer, repo)
    seqs: SequenceConstraints | None = None
    if constraints is not None and _within_constraint_bounds(ctx) and \
            constrained(config, ctx.language):
        # The constraint sees the document as the user will: the text before the cursor, then
        # the generation as it would be inserted (on an indentation-only line the model writes
        # the indentation itself, and the cursor's wins).
        seqs = constraints.for_document(ctx.language, ctx.prefix,
                                        lambda text: strip_cursor_indent(text, ctx))
    masks = seqs if caps.logits_processors else None
    base = GenerationRequest(
        ids, max_new, config.temperature, config.top_p, config.seed,
        stop=lambda g: should_stop(strip_cursor_indent(g, ctx), ctx), cache_key=uri,
        logits_processors=_processors(masks), logprobs=n > 1)  # only ranking reads them
    # Each candidate needs its own processors: the syntax constraint follows its sequence.
    requests = [base] + [dataclasses.replace(base, seed=(base.seed + i) % 2**31,
                                             temperature=config.sample_temperature,
                                             logits_processors=_processors(masks))
                         for i in range(1, n)]
    return Plan(ctx, cache_key(ctx, skey, n), skey, tuple(requests), seqs, n_repo)


def _max_new(ctx: CursorContext, config: Config) -> int:
    if ctx.mode is CompletionMode.MULTI_LINE:
        return config.max_tokens_multi_line
    return config.max_tokens_single_line


def _budget(config: Config, caps: GeneratorCapabilities, max_new: int, repo: bool = False
            ) -> int:
    """The prompt budget of the cursor's file. Memory guard: the prompt (with the repository
    context's budget) and the generation must fit the context window; the budget shrinks to fit
    instead of failing."""
    budget = config.context_tokens
    if caps.context_window:
        extra = config.repo_context_tokens if repo else 0
        budget = max(16, min(budget, caps.context_window - max_new - extra))
    return budget


# --- prefetch --------------------------------------------------------------------------------

def prefetch_stage(ctx: CursorContext, config: Config, caps: GeneratorCapabilities,
                   tokenizer: Tokenizer, repo: RepoPreamble | None = None) -> list[int]:
    """The prompt a request at this cursor would use, token for token: what prefetch puts in
    the KV cache while the user reads, so that request only decodes."""
    return _in_file(ctx, config, caps, tokenizer, repo)[0]


def next_window_stage(ctx: CursorContext, config: Config, caps: GeneratorCapabilities,
                      tokenizer: Tokenizer, margin: int, preamble: Sequence[int] = ()
                      ) -> list[int] | None:
    """The start of the prompt once the user has typed about ``margin`` more tokens, when that
    start differs from today's (the aligned window is about to jump): its beginning up to the
    cursor, for prefetch, after today's repository context ``preamble``. None while the window
    stays put."""
    budget = _budget(config, caps, _max_new(ctx, config), bool(preamble))
    ids = next_window_prefix(prompt_prefix(ctx), tokenizer.encode, caps.fim_ids, budget,
                             config.prefix_share, config.align_lines, margin)
    return [*preamble, *ids] if ids is not None else None


def _processors(seqs: SequenceConstraints | None) -> tuple[object, ...]:
    return (seqs.make(),) if seqs is not None else ()


def _indent(line_prefix: str) -> int:
    return len(line_prefix) - len(line_prefix.lstrip())


# --- post-process ----------------------------------------------------------------------------

def postprocess_stage(result: GenerationResult, plan: Plan,
                      special_tokens: Sequence[str], origin: int = 0) -> Candidate:
    """Post-processed text; with the syntax constraint, cut back to what leaves the document
    with no more syntax errors than before (the suffix counts: FIM)."""
    ctx = plan.ctx
    text = postprocess(strip_cursor_indent(result.text, ctx), ctx, special_tokens)
    if plan.constraints is not None and text:
        from grammar_constraints.finish import fit

        text = fit(ctx.prefix, text, ctx.suffix, ctx.language)
    return Candidate(text, result, origin, plan.requests[origin].temperature <= 0)


# --- rank ------------------------------------------------------------------------------------

def rank_stage(candidates: Sequence[Candidate], ctx: CursorContext, reranker: Reranker,
               cancel: object | None = None, syntax_first: bool = False
               ) -> tuple[list[Candidate], Ranking]:
    """Best first, without empty or duplicate candidates (never fewer otherwise: the
    reranker orders, it does not drop). A single candidate is not ranked.

    ``syntax_first`` (the syntax constraint is on): candidates with which the code around the
    cursor parses, the suffix included, go before those with which it cannot (in the
    reranker's order within each group): one that cannot parse is wrong whatever it scores,
    and the next candidate is the repair."""
    by_origin = {c.origin: c for c in candidates}
    if len(candidates) == 1:
        only = [c for c in candidates if c.text.strip()]
        return only, Ranking([])
    ranking = reranker.rank([Pick(c.text, c.origin, c.result.logprobs, c.greedy)
                             for c in candidates], ctx.prefix, ctx.suffix, ctx.language,
                            cancel)  # type: ignore[arg-type]
    if syntax_first and len(ranking.ranked) > 1:
        from grammar_constraints.finish import fits

        ok = [fits(ctx.prefix, r.text, ctx.suffix, ctx.language) is not False
              for r in ranking.ranked]
        ranking.ranked = [r for r, good in zip(ranking.ranked, ok, strict=True) if good] + \
            [r for r, good in zip(ranking.ranked, ok, strict=True) if not good]
    ranked = [dataclasses.replace(by_origin[r.origins[0]], text=r.text) for r in ranking.ranked]
    return ranked, ranking


def outcome_of(plan: Plan, candidates: Sequence[Candidate], ranked: Sequence[Candidate],
               ranking: Ranking, total_s: float, rerank_s: float = 0.0) -> CompletionOutcome:
    """The answer: the ranked texts, with figures over every candidate decoded."""
    results = [c.result for c in candidates]
    first = ranked[0].result if ranked else results[0]
    rows: tuple[dict[str, object], ...] = ()
    if ranking.ranked:
        rows = tuple({"origins": list(r.origins), "meanLogprob": round(r.mean_logprob, 4),
                      "score": round(r.score, 4),
                      "signals": {s.value: round(v, 4) for s, v in r.signals.items()}}
                     for r in ranking.ranked)
    elif ranked:
        rows = ({"origins": [ranked[0].origin]},)
    return CompletionOutcome(
        ranked[0].text if ranked else "", plan.ctx.mode, Source.MODEL, first.prompt_tokens,
        sum(len(r.token_ids) for r in results), first.prefill_s,
        max(r.decode_s for r in results), total_s, first.finish.value,
        int(first.extra.get("reused_tokens", 0)), tuple(c.text for c in ranked[1:]),
        plan.constraints.stats() if plan.constraints is not None else {}, rows, rerank_s)
