"""What a run prints and draws: the Markdown table, script-readable lines, comparisons."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lspbench.metrics import mean, sign_test


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def is_repo(summary: dict[str, Any]) -> bool:
    """A summary of the ``repo`` suite (line figures instead of pass@k)."""
    return "identifier_em" in summary


# The repo suite's figures: (summary key, row name).
REPO_ROWS = (("exact_match", "exact match"), ("identifier_em", "identifier match"),
             ("identifier_f1", "identifier F1"), ("edit_similarity", "edit similarity"),
             ("symbol_match", "symbol match (first identifier)"),
             ("pass_rate", "pass rate (tested holes)"),
             ("definition_in_context", "defining file in the context"))


def _repo_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("tasks", _fmt(s.get("tasks")))]
    rows += [(name, _fmt(s.get(key))) for key, name in REPO_ROWS]
    rows.append(("tested holes", _fmt(s.get("tested"))))
    return rows + _common_rows(s)


def _common_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows every suite reports: empty answers, errors, latency, speed, wall time."""
    rows = [("empty suggestions", _fmt(s.get("empty_rate"))),
            ("request errors", _fmt(s.get("errors"))),
            ("latency p50 (s)", _fmt(s.get("latency_p50_s"), 2)),
            ("latency p95 (s)", _fmt(s.get("latency_p95_s"), 2)),
            ("tokens/s (decode)", _fmt(s.get("tokens_per_s"), 1))]
    if "wall_s" in s:
        rows.append(("wall time (s)", _fmt(s.get("wall_s"), 1)))
    return rows


def _rows(s: dict[str, Any], ks: Sequence[int]) -> list[tuple[str, str]]:
    if is_repo(s):
        return _repo_rows(s)
    rows = [("tasks", _fmt(s.get("tasks"))), ("samples", _fmt(s.get("samples")))]
    rows += [(f"pass@{k}", _fmt(s.get(f"pass@{k}"))) for k in ks]
    if "rank@1" in s:
        rows += [("rank@1 (first suggestion)", _fmt(s.get("rank@1"))),
                 ("first@1 (greedy candidate)", _fmt(s.get("first@1"))),
                 ("sample@1 (random sample)", _fmt(s.get("sample@1"))),
                 ("pass@n (any candidate)", _fmt(s.get("pass@n"))),
                 ("rerank p50 (s)", _fmt(s.get("rerank_p50_s"), 3)),
                 ("rerank p95 (s)", _fmt(s.get("rerank_p95_s"), 3))]
    rows.append(("syntax-error rate", _fmt(s.get("syntax_error_rate"))))
    return rows + _common_rows(s)


def markdown(summary: dict[str, Any], ks: Sequence[int]) -> str:
    """The summary as a Markdown table (a column per task kind or project when there are
    several)."""
    by_kind = summary.get("by_kind") or summary.get("by_project") or {}
    head = ["metric", "all", *by_kind]
    columns = [_rows(summary, ks)] + [_rows(v, ks) for v in by_kind.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (name, _) in enumerate(columns[0]):
        cells = [c[i][1] if i < len(c) else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_lines(summary: dict[str, Any], ks: Sequence[int]) -> str:
    """``pass@1: 0.433`` lines for scripts."""
    if is_repo(summary):
        keys = [k for k, _ in REPO_ROWS] + ["empty_rate", "latency_p50_s", "latency_p95_s"]
        return "\n".join(f"{k}: {_fmt(summary.get(k))}" for k in keys)
    out = [f"pass@{k}: {_fmt(summary.get(f'pass@{k}'))}" for k in ks]
    out += [f"{m}: {_fmt(summary.get(m))}" for m in ("rank@1", "first@1", "sample@1", "pass@n")
            if m in summary]
    out.append(f"syntax_error_rate: {_fmt(summary.get('syntax_error_rate'))}")
    out.append(f"latency_p50_s: {_fmt(summary.get('latency_p50_s'))}")
    out.append(f"latency_p95_s: {_fmt(summary.get('latency_p95_s'))}")
    return "\n".join(out)


def solved(rows: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """task_id → did any candidate pass."""
    out: dict[str, bool] = {}
    for r in rows:
        out[r["task_id"]] = out.get(r["task_id"], False) or bool(r["passed"])
    return out


def compare(a: dict[str, Any], b: dict[str, Any], rows_a: Sequence[dict[str, Any]],
            rows_b: Sequence[dict[str, Any]], names: tuple[str, str], ks: Sequence[int]
            ) -> tuple[str, dict[str, Any]]:
    """Side by side on the tasks both runs finished, with paired counts."""
    if names[0] == names[1]:  # two folders of the same name: keep both sets of counts
        names = (f"{names[0]}-A", f"{names[1]}-B")
    sa, sb = solved(rows_a), solved(rows_b)
    common = sorted(set(sa) & set(sb))
    only_a = [t for t in common if sa[t] and not sb[t]]
    only_b = [t for t in common if sb[t] and not sa[t]]
    both = sum(1 for t in common if sa[t] and sb[t])
    paired = {"common_tasks": len(common), "solved_by_both": both,
              f"solved_by_{names[0]}_only": len(only_a), f"solved_by_{names[1]}_only": len(only_b),
              f"{names[0]}_only": only_a, f"{names[1]}_only": only_b}
    ra, rb = _rows(a, ks), _rows(b, ks)
    lines = [f"| metric | {names[0]} | {names[1]} |", "|---|---|---|"]
    lines += [f"| {n} | {x} | {y} |" for (n, x), (_, y) in zip(ra, rb, strict=False)]
    lines.append("")
    lines.append(f"Paired on {len(common)} tasks: both solved {both}; {names[0]} only "
                 f"{len(only_a)}; {names[1]} only {len(only_b)}.")
    if len(set(sa)) != len(set(sb)) or len(common) != len(sa):
        lines.append("(The runs did not finish the same tasks; pass@k above is over each run's "
                     "own tasks, the paired counts over the common ones.)")
    return "\n".join(lines), paired


# Binary per-hole figures of the repo suite, compared hole by hole.
PAIRED = (("identifier_em", "identifier match"), ("exact_match", "exact match"),
          ("symbol_match", "symbol match"), ("passed", "tests passed"))


def compare_repo(a: dict[str, Any], b: dict[str, Any], rows_a: Sequence[dict[str, Any]],
                 rows_b: Sequence[dict[str, Any]], names: tuple[str, str]
                 ) -> tuple[str, dict[str, Any]]:
    """Two runs of the repo suite side by side, then hole by hole on the holes both finished:
    per figure the means and their difference in points (B - A); for the yes/no figures how
    many holes only one side got, with the exact sign test's p (is the split more uneven than
    chance?). Tests count only where both runs had them judged."""
    if names[0] == names[1]:
        names = (f"{names[0]}-A", f"{names[1]}-B")
    by_a = {r["task_id"]: r for r in rows_a}
    by_b = {r["task_id"]: r for r in rows_b}
    common = sorted(set(by_a) & set(by_b))
    lines = [f"| metric | {names[0]} | {names[1]} |", "|---|---|---|"]
    lines += [f"| {n} | {x} | {y} |"
              for (n, x), (_, y) in zip(_repo_rows(a), _repo_rows(b), strict=False)]
    lines += ["", f"Paired on {len(common)} holes ({names[1]} - {names[0]}):"]
    paired: dict[str, Any] = {"common_tasks": len(common)}
    for key, label in PAIRED:
        ids = [t for t in common if by_a[t].get(key) is not None and by_b[t].get(key) is not None]
        if not ids:
            continue
        xa = [bool(by_a[t][key]) for t in ids]
        xb = [bool(by_b[t][key]) for t in ids]
        a_only = [t for t, x, y in zip(ids, xa, xb, strict=True) if x and not y]
        b_only = [t for t, x, y in zip(ids, xa, xb, strict=True) if y and not x]
        diff = 100 * ((mean(xb) or 0.0) - (mean(xa) or 0.0))
        p = sign_test(len(b_only), len(a_only))
        paired[key] = {"holes": len(ids), "a": mean(xa), "b": mean(xb), "diff_points": diff,
                       f"{names[0]}_only": a_only, f"{names[1]}_only": b_only, "sign_test_p": p}
        lines.append(f"- {label}: {_fmt(mean(xa))} -> {_fmt(mean(xb))} ({diff:+.1f} points "
                     f"on {len(ids)} holes); {names[1]} only {len(b_only)}, {names[0]} only "
                     f"{len(a_only)}, sign test p={p:.3g}")
    for key, label in (("identifier_f1", "identifier F1"),
                       ("edit_similarity", "edit similarity")):
        if common:
            diff = 100 * ((mean([by_b[t][key] for t in common]) or 0.0)
                          - (mean([by_a[t][key] for t in common]) or 0.0))
            paired[key] = {"diff_points": diff}
            lines.append(f"- {label}: {diff:+.1f} points")
    if len(common) != len(by_a) or len(common) != len(by_b):
        lines.append("(The runs did not finish the same holes; the table is over each run's "
                     "own holes, the paired lines over the common ones.)")
    return "\n".join(lines), paired


def chart(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str], ks: Sequence[int],
          path: Path) -> Path:
    """A bar chart of two runs (PNG): pass@k and syntax-error rate, or the repo suite's
    figures."""
    import matplotlib

    matplotlib.use("Agg")  # no display; never opens a window
    import matplotlib.pyplot as plt

    metrics = [k for k, _ in REPO_ROWS] if is_repo(a) else \
        [f"pass@{k}" for k in ks] + ["syntax_error_rate"]
    labels = [m.replace("_", " ") for m in metrics]
    va = [a.get(m) or 0.0 for m in metrics]
    vb = [b.get(m) or 0.0 for m in metrics]
    xs = range(len(metrics))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(metrics), 3.6), dpi=110)
    width = 0.38
    bars_a = ax.bar([x - width / 2 for x in xs], va, width, label=names[0])
    bars_b = ax.bar([x + width / 2 for x in xs], vb, width, label=names[1])
    for bars in (bars_a, bars_b):
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, max(1.0, *va, *vb) * 1.12)
    ax.set_title(f"lsp-bench: {a.get('suite') or ''} ({a.get('tasks')} vs {b.get('tasks')} tasks)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
