"""Order the candidates of one request, best first.

Candidates whose texts differ only in whitespace are one candidate (its *votes* count them);
empty ones are dropped; nothing else is ever dropped. Each remaining candidate gets signals
(:class:`Signal`), all in [-5, 1], and the score is their weighted sum
(:data:`DEFAULT_WEIGHTS`, fitted on even-numbered HumanEval tasks: ``benchmarks/rerank_fit.py``).
When the file's own examples ran, a candidate that passes more of them comes first whatever its
score ("examples first"): a failing example is evidence, the other signals are guesses.

Each expensive signal fails on its own: a sandbox that cannot start or an encoder that cannot
load leaves its signal out (a warning in the log) and the ranking goes on with the rest.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from server.config import RerankMode
from server.rerank.encoder import Encoder, EncoderError
from server.rerank.examples import Example, ExampleRun, extract, target_function

logger = logging.getLogger(__name__)


class Signal(enum.Enum):
    LOGPROB = "logprob"  # mean token log-probability (length-normalised), clipped at -5
    GREEDY = "greedy"  # 1 for the greedily decoded candidate
    VOTES = "votes"  # share of all candidates with this text (whitespace aside)
    EXAMPLES = "examples"  # share of the file's examples it passes
    BEHAVIOUR = "behaviour"  # share of candidates with the same outputs on the examples' inputs
    CONSENSUS = "consensus"  # mean cosine similarity of its embedding to the other candidates'
    CONTEXT = "context"  # cosine similarity of its embedding to the code around the cursor
    # Mean log-probability of the docstring after its code (Coder-Reviewer). Measured offline
    # only (benchmarks/rerank_reviewer.py): it did not help on the fit split, and one prompt
    # evaluation per candidate costs seconds on a CPU, so the server does not compute it.
    REVIEWER = "reviewer"


# The signals each mode computes. LOGPROB's are free (the model produced them while decoding).
SIGNALS: Mapping[RerankMode, frozenset[Signal]] = {
    RerankMode.OFF: frozenset(),
    RerankMode.LOGPROB: frozenset({Signal.LOGPROB, Signal.GREEDY, Signal.VOTES}),
    RerankMode.FULL: frozenset(Signal) - {Signal.REVIEWER},
}
_EMBEDDING = frozenset({Signal.CONSENSUS, Signal.CONTEXT})
_EXECUTION = frozenset({Signal.EXAMPLES, Signal.BEHAVIOUR})


@dataclass(frozen=True)
class Weights:
    weights: Mapping[Signal, float]
    examples_first: bool = True

    def score(self, signals: Mapping[Signal, float]) -> float:
        return float(sum(self.weights.get(s, 0.0) * v for s, v in signals.items()))


# Fitted by benchmarks/rerank_fit.py on the 82 even-numbered HumanEval tasks (grid search, mean
# rank@1 over n = 2, 4, 8; ties to fewer and smaller weights): log-probability plus half the
# exact votes, the file's examples first. Held out (odd tasks, n = 8, samples at 0.6): 0.549
# vs greedy 0.390 (BENCHMARKS.md; a refit on those candidates, 0.5 x log-probability, ranks the
# held-out tasks the same). No embedding signal: with them the held-out figure was not better.
DEFAULT_WEIGHTS = Weights({Signal.LOGPROB: 1.0, Signal.VOTES: 0.5}, examples_first=True)
# The same fit with MiniLM embeddings available (rerankEncoder set): half the log-probability
# plus the embedding consensus (the medoid), examples first. Held out (odd, n = 8): 0.488, so
# embeddings are off by default (rerankEncoder "none") and this applies only when asked for.
EMBEDDING_WEIGHTS = Weights({Signal.LOGPROB: 0.5, Signal.CONSENSUS: 1.0}, examples_first=True)
# The same fit with the generator's own hidden states: held out (odd, n = 8) 0.512, one task
# more than without embeddings, at about 2 s and 1 GB more per request on a CPU.
GENERATOR_WEIGHTS = Weights({Signal.LOGPROB: 0.5, Signal.CONSENSUS: 0.5}, examples_first=True)


@dataclass(frozen=True)
class Pick:
    """A candidate as the reranker gets it."""

    text: str
    origin: int  # 0: the first request (greedy at temperature 0); i: sampled with seed + i
    logprobs: Sequence[float] = ()
    greedy: bool = False


@dataclass(frozen=True)
class Ranked:
    text: str
    origins: tuple[int, ...]  # every candidate that produced this text
    mean_logprob: float
    signals: Mapping[Signal, float]
    score: float
    examples: ExampleRun | None = None


@dataclass
class Ranking:
    ranked: list[Ranked]
    seconds: dict[str, float] = field(default_factory=dict)  # per costly signal
    examples: int = 0  # the file's examples used
    warnings: list[str] = field(default_factory=list)


def mean_logprob(logprobs: Sequence[float]) -> float:
    vals = [v for v in logprobs if np.isfinite(v)]
    return max(-5.0, float(np.mean(vals))) if vals else -5.0


def normalized(text: str) -> str:
    """Texts equal under this are duplicates (whitespace differences only)."""
    return " ".join(text.split())


def dedupe(picks: Sequence[Pick]) -> list[list[Pick]]:
    """Groups of duplicates, in order of first appearance; empty texts dropped."""
    groups: dict[str, list[Pick]] = {}
    for p in picks:
        key = normalized(p.text)
        if key:
            groups.setdefault(key, []).append(p)
    return list(groups.values())


def consensus(vectors: np.ndarray, counts: Sequence[int]) -> list[float]:
    """Each group's mean similarity to all other candidates (its own duplicates count 1)."""
    n = int(sum(counts))
    if n <= 1:
        return [1.0] * len(counts)
    sims = vectors @ vectors.T
    c = np.asarray(counts, dtype=np.float64)
    out = []
    for i in range(len(counts)):
        total = float(sims[i] @ c) - float(sims[i, i]) * c[i] + (c[i] - 1)
        out.append(total / (n - 1))
    return out


def behaviour(runs: Sequence[ExampleRun], counts: Sequence[int]) -> list[float]:
    """Share of candidates that gave the same outputs on the examples' inputs; a candidate that
    crashed or timed out agrees with nobody."""
    n = int(sum(counts)) or 1
    weight: dict[str, int] = {}
    for r, c in zip(runs, counts, strict=True):
        weight[r.fingerprint] = weight.get(r.fingerprint, 0) + c
    return [0.0 if not r.fingerprint or r.fingerprint.startswith("!") else weight[r.fingerprint] / n
            for r in runs]


def context_text(prefix: str) -> str:
    """What a candidate should resemble: the function being written (signature, docstring)
    or, outside one, the end of the text before the cursor."""
    found = target_function(prefix)
    start = found[1] if found is not None and len(prefix) - found[1] < 4000 else len(prefix) - 1500
    return prefix[max(0, start):]


class Reranker:
    """Ranks candidates by the signals of its mode. Thread-safe; the encoder loads lazily."""

    def __init__(self, mode: RerankMode, weights: Weights = DEFAULT_WEIGHTS,
                 encoder: Callable[[], Encoder | None] | None = None,
                 examples: object | None = None, compute_all: bool = False) -> None:
        # ``encoder``: makes the encoder on first use (raises EncoderError); ``examples``: an
        # ExampleRunner (or anything with its ``run``), None for no examples.
        self.mode = mode
        self.weights = weights
        self._make_encoder = encoder
        self._encoder: Encoder | None = None
        self._encoder_error: str | None = None
        self._examples = examples
        # Compute signals that weigh nothing too (benchmarks fit on them); else an encoder is
        # only loaded and run when an embedding signal has a weight.
        self.compute_all = compute_all
        self._lock = threading.Lock()

    @property
    def signals(self) -> frozenset[Signal]:
        wanted = SIGNALS[self.mode]
        if self.compute_all:
            return wanted
        return wanted - {s for s in _EMBEDDING if not self.weights.weights.get(s)}

    def encoder(self) -> Encoder | None:
        """The encoder, loaded on first use; None when there is none or it failed to load."""
        if self._make_encoder is None or not (self.signals & _EMBEDDING):
            return None
        with self._lock:
            if self._encoder is None and self._encoder_error is None:
                t0 = time.perf_counter()
                try:
                    self._encoder = self._make_encoder()
                except EncoderError as exc:
                    self._encoder_error = str(exc)
                    logger.warning("reranking without embeddings: %s", exc)
                else:
                    if self._encoder is not None:
                        logger.info("rerank encoder %s loaded in %.1fs", self._encoder.name,
                                    time.perf_counter() - t0)
            return self._encoder

    def rank(self, picks: Sequence[Pick], prefix: str, suffix: str, language: str,
             cancel: threading.Event | None = None) -> Ranking:
        groups = dedupe(picks)
        report = Ranking([])
        if not groups:
            return report
        counts = [len(g) for g in groups]
        total = sum(counts)
        wanted = self.signals
        sig: list[dict[Signal, float]] = [{} for _ in groups]
        lps = [max(mean_logprob(p.logprobs) for p in g) for g in groups]
        for i, g in enumerate(groups):
            if Signal.LOGPROB in wanted:
                sig[i][Signal.LOGPROB] = lps[i]
            if Signal.GREEDY in wanted:
                sig[i][Signal.GREEDY] = float(any(p.greedy for p in g))
            if Signal.VOTES in wanted:
                sig[i][Signal.VOTES] = counts[i] / total
        texts = [g[0].text for g in groups]
        runs: list[ExampleRun] | None = None
        if wanted & _EXECUTION and len(groups) > 1:
            runs = self._run_examples(texts, prefix, suffix, language, cancel, report)
            if runs is not None:
                for i, (r, b) in enumerate(zip(runs, behaviour(runs, counts), strict=True)):
                    sig[i][Signal.EXAMPLES] = r.fraction
                    sig[i][Signal.BEHAVIOUR] = b
        if wanted & _EMBEDDING and len(groups) > 1:
            self._embed(texts, counts, prefix, sig, report)
        ranked = [Ranked(texts[i], tuple(p.origin for p in g), lps[i], sig[i],
                         self.weights.score(sig[i]), runs[i] if runs is not None else None)
                  for i, g in enumerate(groups)]
        if self.mode is not RerankMode.OFF:
            first = self.weights.examples_first and runs is not None
            # Stable: ties keep the decoding order (greedy first).
            ranked.sort(key=lambda r: (-(r.examples.fraction if first and r.examples else 0.0),
                                       -r.score))
        report.ranked = ranked
        return report

    def _run_examples(self, texts: list[str], prefix: str, suffix: str, language: str,
                      cancel: threading.Event | None, report: Ranking) -> list[ExampleRun] | None:
        if self._examples is None or language != "python":
            return None
        examples: list[Example] = extract(prefix, suffix)
        report.examples = len(examples)
        if not examples:
            return None
        t0 = time.perf_counter()
        try:
            runs: list[ExampleRun] = self._examples.run(  # type: ignore[attr-defined]
                [prefix + t + suffix for t in texts], examples, cancel)
        except Exception as exc:  # noqa: BLE001 - rank without them, never fail the request
            logger.warning("reranking without the file's examples: %s", exc)
            report.warnings.append(f"examples: {exc}")
            return None
        finally:
            report.seconds["examples"] = round(time.perf_counter() - t0, 4)
        return runs

    def _embed(self, texts: list[str], counts: list[int], prefix: str,
               sig: list[dict[Signal, float]], report: Ranking) -> None:
        t0 = time.perf_counter()
        enc = self.encoder()
        if enc is None:
            if self._encoder_error:
                report.warnings.append(f"encoder: {self._encoder_error}")
            return
        try:
            vecs = enc.embed([*texts, context_text(prefix)])
        except Exception as exc:  # noqa: BLE001
            logger.warning("reranking without embeddings: %s", exc)
            report.warnings.append(f"encoder: {exc}")
            return
        finally:
            report.seconds["embeddings"] = round(time.perf_counter() - t0, 4)
        cand, ctx = vecs[:-1], vecs[-1]
        for i, c in enumerate(consensus(cand, counts)):
            sig[i][Signal.CONSENSUS] = c
            sig[i][Signal.CONTEXT] = float(cand[i] @ ctx)
