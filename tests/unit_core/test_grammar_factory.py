"""The constraint factory (grammar_constraints/factory.py) over the fake backend's tokenizer: the
table is built once and only when needed, every LSP id of a declared language has a
constraint, and each sequence gets a constraint of its own."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from grammar_constraints.factory import ConstraintFactory
from grammar_constraints.processor import SequenceProcessor, SyntaxConstraint
from server.backends.fake import FakeBackend
from server.languages import LSP_IDS

PREFIX = "def f(x):\n    return "


class CountingDecode:
    """The fake backend's decode, counting its calls."""

    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.calls = 0

    def __call__(self, ids: Sequence[int]) -> str:
        self.calls += 1
        return self.backend.decode(ids)


@pytest.fixture(scope="module")
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture(scope="module")
def factory(backend: FakeBackend) -> ConstraintFactory:
    return ConstraintFactory(backend.decode, backend.vocab_size, backend.decoder.stop_ids)


def tok(backend: FakeBackend, text: str) -> int:
    (token,) = backend.encode(text)
    return token


def test_the_table_is_built_once_on_first_use(backend: FakeBackend) -> None:
    decode = CountingDecode(backend)
    factory = ConstraintFactory(decode, backend.vocab_size, backend.decoder.stop_ids)
    assert decode.calls == 0  # nothing compiled before a constraint is needed
    table = factory.table
    built = decode.calls
    assert factory.table is table
    assert factory.for_document("python", PREFIX, lambda g: g) is not None
    assert decode.calls == built  # neither the second access nor a document rebuilt it
    assert table.size == backend.vocab_size
    # Stop tokens are not decoded: they have no text, and the lexical layer never masks them.
    assert backend.decoder.stop_ids <= table.exempt
    assert all(table.texts[i] == "" for i in backend.decoder.stop_ids)
    assert table.texts[tok(backend, ")")] == ")"


def test_an_unsupported_language_builds_nothing(backend: FakeBackend) -> None:
    decode = CountingDecode(backend)
    factory = ConstraintFactory(decode, backend.vocab_size, backend.decoder.stop_ids)
    assert factory.for_document("plaintext", PREFIX, lambda g: g) is None
    assert decode.calls == 0


@pytest.mark.parametrize("language_id", sorted(LSP_IDS))
def test_every_declared_lsp_id_has_a_constraint(factory: ConstraintFactory,
                                                language_id: str) -> None:
    assert factory.supports(language_id)
    assert factory.supports(language_id.upper())  # ids are matched as the server reads them
    assert factory.for_document(language_id, "", lambda g: g) is not None


@pytest.mark.parametrize("language_id", ["plaintext", "ruby", "markdown", ""])
def test_other_languages_have_none(factory: ConstraintFactory, language_id: str) -> None:
    assert not factory.supports(language_id)
    assert factory.for_document(language_id, PREFIX, lambda g: g) is None


def test_each_sequence_gets_a_fresh_constraint(factory: ConstraintFactory) -> None:
    constraints = factory.for_document("typescriptreact", "const x = ", lambda g: g)
    assert constraints is not None
    a, b = constraints.make(), constraints()
    assert a is not b
    assert constraints.made == [a, b]
    for c in (a, b):
        assert isinstance(c, SyntaxConstraint) and isinstance(c, SequenceProcessor)
        assert c.cursor.table is factory.table
        assert c.cursor.syntax.oracle.grammar == "tsx"  # type: ignore[attr-defined]


def test_the_constraints_follow_their_own_sequences(backend: FakeBackend,
                                                    factory: ConstraintFactory) -> None:
    constraints = factory.for_document("python", PREFIX, lambda g: g)
    assert constraints is not None
    a, b = constraints.make(), constraints.make()
    x, paren = tok(backend, "x"), tok(backend, ")")
    assert a.check([], x)
    assert a.check([x], tok(backend, "("))
    assert b.check([], tok(backend, "("))
    assert not b.check([], paren)  # nothing open in b's sequence
    assert a.check([x, tok(backend, "(")], paren)  # a's "(" closes


def test_stats_add_up_over_the_sequences(backend: FakeBackend,
                                         factory: ConstraintFactory) -> None:
    constraints = factory.for_document("python", PREFIX, lambda g: g)
    assert constraints is not None
    assert constraints.stats() == {}
    paren, equals = tok(backend, ")"), tok(backend, "=")
    a, b = constraints.make(), constraints.make()
    assert not a.check([], paren)
    assert not b.check([], paren) and not b.check([], equals)  # "return ="
    logits = np.zeros(backend.vocab_size, dtype=np.float32)
    a([], logits)
    stats = constraints.stats()
    assert stats["syntax_refused"] == 3
    assert stats["syntax_steps"] == 1
    assert stats["syntax_active"] == 2.0
    assert set(stats) == set(a.stats())


def test_the_mask_fits_the_logits_and_render_is_applied(backend: FakeBackend,
                                                        factory: ConstraintFactory) -> None:
    paren = tok(backend, ")")
    plain = factory.for_document("python", PREFIX, lambda g: g)
    assert plain is not None
    logits = np.zeros(backend.vocab_size, dtype=np.float32)
    out = plain.make()([], logits)
    assert out.shape == (backend.vocab_size,)
    assert out[paren] == -np.inf  # the lexical layer: nothing is open
    assert np.isfinite(out[tok(backend, "x")])
    # The constraint judges the text as it will be inserted: here the renderer drops a
    # leading ")", so the token is harmless.
    dropped = factory.for_document("python", PREFIX, lambda g: g.removeprefix(")"))
    assert dropped is not None
    assert dropped.make().check([], paren)


def test_warm_builds_the_table_and_every_mode(backend: FakeBackend) -> None:
    """The server warms the constraint at load (jobs thread), so no request compiles a mode."""
    from grammar_constraints.python_lexer import N_MODES

    factory = ConstraintFactory(backend.decode, backend.vocab_size, backend.decoder.stop_ids)
    factory.warm()
    table = factory.table
    assert all(m is not None for m in table._modes) and len(table._modes) == N_MODES
