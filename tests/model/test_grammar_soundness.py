"""Soundness of the syntax constraint with the default model's own tokenizer (151,936 tokens):
teacher-force real, valid programs token by token through the cursor — neither the lexical
mask nor the exact check may refuse a single token."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grammar_constraints.factory import ConstraintFactory
from grammar_constraints.languages import PythonSyntax
from grammar_constraints.teacher import Forced, cut_whole, teacher_force_chunks
from grammar_constraints.vocab import TokenTable
from lspbench.tasks import load_humaneval
from server.backends.loader import load_backend
from server.config import Config

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    backend = load_backend(Config())
    yield backend, ConstraintFactory(backend.decode, backend.vocab_size,
                                     backend.decoder.stop_ids).table
    backend.close()


def teacher_force(backend, table: TokenTable, text: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The refusals (lexical mask or exact check) while feeding ``text``'s tokens through one
    cursor with an empty prefix (empty when sound)."""
    found = teacher_force_chunks(backend.encode, backend.decode, table, PythonSyntax(), text,
                                 chunk_lines=sys.maxsize)
    assert found.aside == 0 and found.fed > 0  # the cursor constrained every token
    return found.refused


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


# --- the C-family languages: real files of each (tests/data/grammar_corpus, README there) ---

CORPUS = Path(__file__).resolve().parents[1] / "data" / "grammar_corpus"
LANGUAGES = ("javascript", "typescript", "go", "rust", "java", "c", "cpp")


def corpus_files(language: str) -> list[Path]:
    return sorted(p for p in (CORPUS / language).iterdir() if p.is_file())


# False refusals measured on this corpus (2026-11-29): none in any language (there were 79 at
# the start of that day: see BENCHMARKS.md). Any refusal fails the test.


@pytest.mark.parametrize("language", LANGUAGES)
def test_real_files_are_accepted(model, language: str) -> None:  # type: ignore[no-untyped-def]
    from grammar_constraints.languages import syntax_for

    backend, table = model
    syntax = syntax_for(language)
    assert syntax is not None
    found = Forced()
    for path in corpus_files(language):
        source = cut_whole(syntax, path.read_text(encoding="utf-8"))
        found.add(teacher_force_chunks(backend.encode, backend.decode, table, syntax, source),
                  f"{path.name}: ")
    print(f"\n{language}: {len(found.refused)} refused of {found.fed} tokens; "
          f"{found.aside}/{found.chunks} cursors stood aside")
    assert found.fed > 2000
    assert found.aside <= 0.05 * found.chunks  # a cursor that stands aside does not constrain
    assert not found.refused, found.refused[:10]
