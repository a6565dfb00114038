"""Reranking the candidates of a completion request (issue 15).

:class:`~server.rerank.rank.Reranker` orders candidates by signals: the mean token
log-probability, agreement between candidates (exact votes, embeddings, behaviour on examples),
similarity to the code around the cursor, and the file's own examples (doctests, asserts) run in
the sandbox. :func:`reranker_for` builds one from the settings.
"""

from __future__ import annotations

from server.config import Config, RerankMode
from server.rerank.rank import (
    DEFAULT_WEIGHTS,
    EMBEDDING_WEIGHTS,
    GENERATOR_WEIGHTS,
    Pick,
    Ranked,
    Ranking,
    Reranker,
    Signal,
    Weights,
)

__all__ = ["DEFAULT_WEIGHTS", "EMBEDDING_WEIGHTS", "GENERATOR_WEIGHTS", "Pick", "Ranked",
           "Ranking", "Reranker", "Signal", "Weights", "reranker_for", "weights_for"]


def weights_for(encoder: str) -> Weights:
    """The fitted weights for a ``rerankEncoder`` setting: naming an encoder turns the embedding
    signals on (the weights fitted with it: the generator's own, MiniLM's for the others, a
    CodeBERT folder included); ``none`` ranks without them."""
    name = encoder.strip().lower()
    if name in ("", "none", "off"):  # what make_encoder reads as no encoder
        return DEFAULT_WEIGHTS
    return GENERATOR_WEIGHTS if name == "generator" else EMBEDDING_WEIGHTS


def reranker_for(config: Config, generator_path: str = "") -> Reranker:
    """The reranker the settings ask for; expensive parts (encoder, sandbox) load on first use."""
    from server.rerank.encoder import make_encoder
    from server.rerank.examples import ExampleRunner

    examples = None
    if config.rerank is RerankMode.FULL:
        examples = ExampleRunner(config.sandbox, config.rerank_timeout_ms / 1000)
    spec, threads = config.rerank_encoder, config.threads
    return Reranker(config.rerank, weights_for(spec),
                    encoder=lambda: make_encoder(spec, generator_path, threads),
                    examples=examples)
