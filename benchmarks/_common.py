"""Small helpers shared by the benchmark scripts (settings on the command line, percentiles,
writing the JSON report and printing it as a Markdown table)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


def parse_settings(items: Iterable[str] | None) -> dict[str, object]:
    """``--set key=value`` pairs → server settings; JSON values (numbers, booleans) decoded."""
    options: dict[str, object] = {}
    for item in items or []:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value  # a plain string such as nf4 or llama.cpp
    return options


def pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def write_report(report: dict[str, object], out: str, hide: Iterable[str] = ()) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2))
    hidden = set(hide)
    print("| metric | value |\n|---|---|")
    for k, v in report.items():
        if k not in hidden:
            print(f"| {k} | {v} |")
