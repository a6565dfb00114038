"""Soundness and effectiveness of the syntax constraint, with the default model's tokenizer.

    .venv/bin/python benchmarks/constraint_quality.py --out benchmarks/out/constraint_quality.json

Soundness: every HumanEval program (prompt + canonical solution) is teacher-forced token by
token through the cursor; a refused token (lexical mask or exact check) is a false rejection.

Effectiveness: each program is corrupted once per kind, at a seeded random line of its
solution (an unmatched closer, ``+*`` after an operand, ``def f(:``, an ``else:`` that
belongs to nothing, a dedent that matches no block, a one-line string running into the next
line, two names side by side, a keyword where a name must be). The text before the corruption
is teacher-forced, then the corruption's tokens: it is caught if one of them is refused
(recall). Precision: refusals on the clean programs are the false positives (none allowed).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import pct, write_report  # noqa: E402
from grammar_constraints.cursor import SyntaxCursor  # noqa: E402
from grammar_constraints.factory import ConstraintFactory  # noqa: E402
from lspbench.tasks import load_humaneval  # noqa: E402
from server.backends.loader import load_backend  # noqa: E402
from server.config import Config, force_offline  # noqa: E402


def corruptions(line: str) -> dict[str, tuple[str, str]]:
    """kind → (text inserted before ``line``'s content, replacing nothing) for one line."""
    indent = line[: len(line) - len(line.lstrip())]
    return {
        "unmatched closer": (indent, "x = 1)\n"),
        "+* after an operand": (indent, "x = 1 +* 2\n"),
        "def f(:": (indent, "def f(:\n"),
        "else without if": (indent, "x = 1\n" + indent + "else:\n"),
        "dedent into no block": (indent, "x = 1\n" + indent[:-2] + "y = 2\n") if len(indent) >= 4
        else (indent, "if x:\n" + indent + "    y = 1\n" + indent + "  z = 2\n"),
        "string across a newline": (indent, "s = 'abc\n"),
        "two names side by side": (indent, "x = a b\n"),
        "keyword as a name": (indent, "for in x:\n"),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/out/constraint_quality.json")
    args = ap.parse_args()
    force_offline()
    backend = load_backend(Config())
    table = ConstraintFactory(backend.decode, backend.vocab_size, backend.decoder.stop_ids).table
    size = table.size

    def feed(cursor: SyntaxCursor, ids: list[int]) -> int | None:
        """Teacher-force ``ids``; the index of the first refused token, else None."""
        for k, tok in enumerate(ids):
            logits = np.zeros(size, dtype=np.float32)
            cursor.fill_mask(logits)
            if not np.isfinite(logits[tok]) or not cursor.viable_with(tok):
                return k
            cursor.accept(tok)
        return None

    tasks = load_humaneval()
    t0 = time.perf_counter()
    clean_tokens, false_rejections, check_times = 0, [], []
    for task in tasks:
        ids = backend.encode(task.prefix + (task.reference or ""))
        cursor = SyntaxCursor(table, "", backend.decode)
        for tok in ids:
            logits = np.zeros(size, dtype=np.float32)
            cursor.fill_mask(logits)
            t = time.perf_counter()
            ok = bool(np.isfinite(logits[tok])) and cursor.viable_with(tok)
            check_times.append(time.perf_counter() - t)
            if not ok:
                false_rejections.append(task.task_id)
            cursor.accept(tok)
            clean_tokens += 1
    rng = random.Random(0)
    caught: dict[str, list[bool]] = {}
    for task in tasks:
        body = task.reference or ""
        lines = [i for i, ln in enumerate(body.splitlines(keepends=True)) if ln.strip()]
        if not lines:
            continue
        pick = rng.choice(lines)
        before_lines = body.splitlines(keepends=True)
        head = task.prefix + "".join(before_lines[:pick])
        for kind, (indent, bad) in corruptions(before_lines[pick]).items():
            cursor = SyntaxCursor(table, "", backend.decode)
            if feed(cursor, backend.encode(head)) is not None:
                continue  # the clean part was refused: counted under soundness
            bad_ids = backend.encode(indent + bad)
            caught.setdefault(kind, []).append(feed(cursor, bad_ids) is not None)
    recall = {k: round(sum(v) / len(v), 3) for k, v in caught.items()}
    total = [x for v in caught.values() for x in v]
    report = {
        "programs": len(tasks),
        "clean_tokens": clean_tokens,
        "false_rejections": len(false_rejections),
        "false_rejection_tasks": sorted(set(false_rejections))[:20],
        "corrupted_programs": len(total),
        "recall_overall": round(sum(total) / len(total), 3),
        "recall_by_kind": recall,
        "precision": 1.0 if not false_rejections else None,
        "check_us_p50": round(pct(check_times, 0.5) * 1e6, 1),
        "check_us_p95": round(pct(check_times, 0.95) * 1e6, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_report(report, args.out, hide=("false_rejection_tasks",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
