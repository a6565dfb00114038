"""Choosing llama.cpp's CPU kernels at run time (server/backends/ggml_cpu.py): the order of the
variants, the probe verdicts kept per CPU, the AMX exclusion and a forced variant."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.backends import ggml_cpu

BEST, NEXT, LAST = Path("libggml-cpu-zen4.so"), Path("libggml-cpu-haswell.so"), \
    Path("libggml-cpu-x64.so")


def key(p: Path) -> str:
    return p.name


def test_the_best_variant_that_passes_its_probe_wins() -> None:
    tried: list[Path] = []

    def try_one(p: Path) -> bool:
        tried.append(p)
        return p != BEST  # the best one crashes here

    assert ggml_cpu.choose([BEST, NEXT, LAST], {}, key, try_one) == NEXT
    assert tried == [BEST, NEXT]


def test_kept_verdicts_are_not_probed_again() -> None:
    def never(p: Path) -> bool:
        raise AssertionError(f"probed {p}")

    assert ggml_cpu.choose([BEST, NEXT], {BEST.name: False, NEXT.name: True}, key, never) == NEXT
    assert ggml_cpu.choose([BEST, NEXT], {BEST.name: True}, key, never) == BEST
    # A single candidate: nothing to fall back to, so no probe either.
    assert ggml_cpu.choose([LAST], {}, key, never) == LAST
    assert ggml_cpu.choose([LAST], {LAST.name: False}, key, never) is None


def test_none_when_every_variant_fails() -> None:
    assert ggml_cpu.choose([BEST, NEXT], {}, key, lambda p: False) is None


def test_probe_verdicts_are_kept_in_the_cache_folder(tmp_path: Path) -> None:
    assert ggml_cpu._read_probes(tmp_path) == {}
    ggml_cpu._write_probe(tmp_path, "cpu:a", True)
    ggml_cpu._write_probe(tmp_path, "cpu:b", False)
    assert ggml_cpu._read_probes(tmp_path) == {"cpu:a": True, "cpu:b": False}
    (tmp_path / "ggml-cpu-probe.json").write_text("not json")
    assert ggml_cpu._read_probes(tmp_path) == {}  # a broken file: probe again
    assert ggml_cpu._read_probes(None) == {}


def _installed_variants() -> list[Path]:
    try:
        return ggml_cpu.variants(ggml_cpu.lib_dir())
    except ImportError:
        return []


needs_variants = pytest.mark.skipif(not _installed_variants(),
                                    reason="llama-cpp-python was built without CPU variants")


@needs_variants
def test_ranked_leaves_out_amx_and_what_this_cpu_cannot_run(monkeypatch) -> None:
    monkeypatch.delenv(ggml_cpu.FORCE_ENV, raising=False)
    monkeypatch.delenv(ggml_cpu.ALLOW_AMX_ENV, raising=False)
    ranked = [ggml_cpu.variant_name(p) for p in ggml_cpu.ranked(ggml_cpu.lib_dir())]
    assert ranked and "sapphirerapids" not in ranked
    assert ranked[-1] == "x64"  # runs anywhere, scores lowest
    assert all(ggml_cpu.score(p) > 0 for p in ggml_cpu.ranked(ggml_cpu.lib_dir()))


@needs_variants
def test_a_forced_variant_is_the_only_candidate(monkeypatch) -> None:
    monkeypatch.setenv(ggml_cpu.FORCE_ENV, "x64")
    assert [ggml_cpu.variant_name(p) for p in ggml_cpu.ranked(ggml_cpu.lib_dir())] == ["x64"]
    monkeypatch.setenv(ggml_cpu.FORCE_ENV, "no-such-cpu")
    with pytest.raises(RuntimeError, match="no such CPU variant"):
        ggml_cpu.ranked(ggml_cpu.lib_dir())
