"""Soundness of the syntax constraint with the default model's own tokenizer (151,936 tokens):
teacher-force real, valid programs token by token through the cursor — neither the lexical
mask nor the exact check may refuse a single token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grammar_constraints.cursor import SyntaxCursor
from grammar_constraints.vocab import TokenTable
from lspbench.tasks import load_humaneval
from server.config import Config
from server.engine import CompletionEngine, load_backend

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    backend = load_backend(Config())
    engine = CompletionEngine(backend, Config())
    yield backend, engine.syntax_table()
    backend.close()


def teacher_force(backend, table: TokenTable, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The refusals while feeding ``text``'s tokens (empty when sound)."""
    ids = backend.encode(text)
    cursor = SyntaxCursor(table, "", backend.decode)
    refused = []
    for k, tok in enumerate(ids):
        logits = np.zeros(table.size, dtype=np.float32)
        cursor.fill_mask(logits)
        ok_lex = bool(np.isfinite(logits[tok]))
        ok_exact = cursor.viable_with(tok)
        if not (ok_lex and ok_exact):
            refused.append(f"{'lexical' if not ok_lex else 'exact'} after "
                           f"{backend.decode(ids[:k])[-50:]!r}: {backend.decode([tok])!r}")
        cursor.accept(tok)
    return refused


def test_table_covers_the_vocabulary(model) -> None:  # type: ignore[no-untyped-def]
    backend, table = model
    assert table.size == backend.vocab_size == 151936
    assert 1000 < table.special.size < 20000  # tokens with quotes, brackets, '#', ...


def test_every_humaneval_solution_is_accepted(model) -> None:  # type: ignore[no-untyped-def]
    backend, table = model
    refused = []
    for task in load_humaneval():
        refused += [f"{task.task_id}: {r}" for r in
                    teacher_force(backend, table, task.prefix + (task.reference or ""))]
    assert not refused, refused[:10]


def test_standard_library_files_are_accepted(model) -> None:  # type: ignore[no-untyped-def]
    import argparse
    import dataclasses
    import json.encoder
    import string

    backend, table = model
    refused = []
    for module in (argparse, dataclasses, json.encoder, string):
        source = Path(module.__file__).read_text(encoding="utf-8")  # type: ignore[arg-type]
        refused += [f"{module.__name__}: {r}" for r in teacher_force(backend, table, source[:12000])]
    assert not refused, refused[:10]
