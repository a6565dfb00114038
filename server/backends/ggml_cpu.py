"""Choose llama.cpp's CPU kernels at run time: one build that is fast on every x86 CPU.

``scripts/setup.sh`` builds llama-cpp-python with ``GGML_BACKEND_DL`` and
``GGML_CPU_ALL_VARIANTS``: the CPU backend is then one ``libggml-cpu-<variant>.so`` per
instruction-set level (x64, sse42, haswell = AVX2, skylakex/icelake/zen4 = AVX-512, alderlake =
AVX-VNNI, sapphirerapids = AMX, ...) next to ``libllama.so``, and nothing is registered until one
is loaded. Why: prompt prefill of the default model is about 55 % faster with the AVX-512 VNNI
kernels than with the portable AVX2 build (BENCHMARKS.md, "Prefill speed"), while a build for the
build machine's own CPU (``GGML_NATIVE``) crashed on other machines.

llama-cpp-python never loads a backend itself, so :func:`ensure_cpu_backend` does, before the
first model is loaded:

- nothing when the CPU backend is linked in (a build without ``GGML_BACKEND_DL``);
- otherwise each variant scores the running CPU (``ggml_backend_score``: 0 when an instruction
  set it needs is missing) and the best one is taken, except the AMX variant (ggml's AMX matmul
  crashes on some Sapphire/Granite Rapids hosts: llama.cpp#20824, ollama#17205; the native
  build's SIGSEGV on this project's AMX machines), unless ``PINGTI_GGML_ALLOW_AMX=1``;
- the first time a variant is used on a CPU it is **probed in a child process** (load the model,
  evaluate a batch and a step): if that crashes, the next best variant is tried, down to plain
  x64. The verdict is kept in the cache folder, so later starts do not probe again.
- ``PINGTI_GGML_CPU_VARIANT=haswell`` (say) forces a variant, for comparisons and as a way out.

Why ``libggml.so.0`` and not ``llama_cpp._ggml``: a wheel holds no symlinks, so ``libggml.so`` is
a second copy of the library with its own backend registry, which libllama never looks at.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ALLOW_AMX_ENV = "PINGTI_GGML_ALLOW_AMX"
FORCE_ENV = "PINGTI_GGML_CPU_VARIANT"
PROBE_TIMEOUT_S = 180
_PROBE_FILE = "ggml-cpu-probe.json"

_loaded: str | None = None  # the variant registered in this process


def lib_dir() -> Path:
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def _libggml(directory: Path) -> Any:
    soname = directory / "libggml.so.0"
    lib = ctypes.CDLL(str(soname if soname.exists() else directory / "libggml.so"))
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_count.argtypes = []
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    return lib


def variants(directory: Path) -> list[Path]:
    return sorted(directory.glob("libggml-cpu-*.so"))


def variant_name(path: Path) -> str:
    return path.name[len("libggml-cpu-"):-len(".so")]


def score(path: Path) -> int:
    """The variant's own verdict on this CPU (0: it needs an instruction set the CPU lacks)."""
    import _ctypes

    try:
        handle = ctypes.CDLL(str(path))
        fn = handle.ggml_backend_score
    except (OSError, AttributeError):
        return 0
    fn.restype = ctypes.c_int
    fn.argtypes = []
    value = int(fn())
    del fn
    _ctypes.dlclose(handle._handle)  # ggml_backend_load reopens the one that is kept
    return value


def ranked(directory: Path) -> list[Path]:
    """Usable variants, best first (AMX left out unless allowed; a forced one alone)."""
    forced = os.environ.get(FORCE_ENV, "").strip()
    allow_amx = os.environ.get(ALLOW_AMX_ENV) == "1"
    scored = []
    for path in variants(directory):
        name = variant_name(path)
        if forced and name != forced:
            continue
        if name == "sapphirerapids" and not allow_amx and not forced:
            continue
        s = score(path)
        if s > 0:
            scored.append((s, path))
    if forced and not scored:
        raise RuntimeError(f"{FORCE_ENV}={forced}: no such CPU variant usable here (have: "
                           f"{', '.join(variant_name(p) for p in variants(directory))})")
    return [p for _, p in sorted(scored, key=lambda sp: -sp[0])]


def _cpu_signature() -> str:
    """What identifies this CPU for the probe cache: model name and instruction-set flags."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "unknown"
    keep = [line for line in info.splitlines()
            if line.startswith(("model name", "flags", "vendor_id", "cpu family", "model\t"))]
    return hashlib.sha256("\n".join(dict.fromkeys(keep)).encode()).hexdigest()[:16]


def _probe_key(variant: Path) -> str:
    st = variant.stat()
    return f"{_cpu_signature()}:{variant.name}:{st.st_size}:{int(st.st_mtime)}"


def _read_probes(cache: Path | None) -> dict[str, bool]:
    if cache is None:
        return {}
    try:
        data = json.loads((cache / _PROBE_FILE).read_text())
        return {str(k): bool(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_probe(cache: Path | None, key: str, ok: bool) -> None:
    if cache is None:
        return
    data = _read_probes(cache)
    data[key] = ok
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{_PROBE_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(cache / _PROBE_FILE)
    except OSError as exc:  # a read-only cache: probe again next time
        logger.debug("could not keep the CPU probe result: %s", exc)


def probe(variant: Path, model: Path) -> bool:
    """Does ``variant`` evaluate ``model`` without crashing here? (In a child process.)"""
    cmd = [sys.executable, "-m", "server.backends.ggml_cpu", str(variant), str(model)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False,
                              cwd=str(Path(__file__).resolve().parents[2]))
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("CPU variant %s: probe failed (%s)", variant_name(variant), exc)
        return False
    if proc.returncode != 0:
        logger.warning("CPU variant %s does not work here (probe exit %s): %s",
                       variant_name(variant), proc.returncode, proc.stderr.strip()[-400:])
        return False
    return True


def choose(candidates: list[Path], verdicts: dict[str, bool], key: Callable[[Path], str],
           try_one: Callable[[Path], bool]) -> Path | None:
    """The first of ``candidates`` (best first) that is known to work or passes its probe;
    known failures are skipped without probing again. A single candidate is not probed: there
    would be nothing to fall back to."""
    if len(candidates) == 1:
        return candidates[0] if verdicts.get(key(candidates[0])) is not False else None
    for path in candidates:
        ok = verdicts.get(key(path))
        if ok is None:
            ok = try_one(path)
        if ok:
            return path
    return None


def ensure_cpu_backend(model: Path | None = None, cache: Path | None = None) -> str | None:
    """Register the best working CPU backend variant if none is registered. Returns the variant
    in use, or None when the CPU backend is built in. ``model`` (a GGUF file) is what a first
    probe evaluates; without it the best-scoring variant is taken unprobed."""
    global _loaded
    if _loaded is not None:
        return _loaded
    directory = lib_dir()
    lib = _libggml(directory)
    if lib.ggml_backend_reg_count() > 0:
        return None
    candidates = ranked(directory)
    if not candidates:
        raise RuntimeError(f"no llama.cpp CPU backend loads on this CPU (in {directory})")
    verdicts = _read_probes(cache)

    def try_one(path: Path) -> bool:
        ok = probe(path, model) if model is not None else True
        _write_probe(cache, _probe_key(path), ok)
        return ok

    chosen = choose(candidates, verdicts, _probe_key, try_one)
    if chosen is None:
        raise RuntimeError("every llama.cpp CPU variant crashed in its probe on this CPU; see "
                           "the log (set PINGTI_GGML_CPU_VARIANT=x64 to force the plainest)")
    if not lib.ggml_backend_load(str(chosen).encode()):
        raise RuntimeError(f"ggml could not load {chosen}")
    _loaded = variant_name(chosen)
    logger.info("llama.cpp CPU kernels: %s", _loaded)
    return _loaded


def _probe_main(variant: str, model: str) -> int:
    """Child process: load ``variant``, evaluate a batch of 64 tokens and one step."""
    import llama_cpp

    lib = _libggml(lib_dir())
    if not lib.ggml_backend_load(variant.encode()):
        return 3
    llama_cpp.llama_backend_init()
    from llama_cpp._logger import set_verbose

    set_verbose(False)
    mparams = llama_cpp.llama_model_default_params()
    m = llama_cpp.llama_model_load_from_file(model.encode(), mparams)
    if not m:
        return 4
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = 256, 64, 64
    cparams.n_threads = cparams.n_threads_batch = max(1, min(2, os.cpu_count() or 1))
    ctx = llama_cpp.llama_init_from_model(m, cparams)
    if not ctx:
        return 5
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(m))
    batch = llama_cpp.llama_batch_init(64, 0, 1)
    for step, width in ((0, 64), (64, 1)):
        batch.n_tokens = width
        for i in range(width):
            batch.token[i] = (17 * (step + i) + 5) % n_vocab
            batch.pos[i] = step + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == width - 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            return 6
    logits = llama_cpp.llama_get_logits_ith(ctx, 0)
    if not all(abs(logits[i]) < 1e6 for i in range(0, n_vocab, 997)):
        return 7  # garbage out is as bad as a crash
    return 0


if __name__ == "__main__":
    raise SystemExit(_probe_main(sys.argv[1], sys.argv[2]))
