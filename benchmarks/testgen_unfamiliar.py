""""Generate tests" on code it was not developed against, with the model's answers logged.

    .venv/bin/python benchmarks/testgen_unfamiliar.py [intervals colors shellwords wildcard]

The unfamiliar targets are stdlib modules (PSF licence) copied under new names into a scratch
folder (``colorsys`` as ``colors``, ``shlex`` as ``shellwords``, ``fnmatch`` as ``wildcard``);
``intervals`` is one of testgen_bench.py's targets, for comparison. Each model answer (prompt
tail, answer, finish reason) and each target's outcome are appended to ``diag.log`` there.
"""

from __future__ import annotations

import colorsys
import fnmatch
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.backends.base import CancelToken, GenerationRequest, ModelBackend  # noqa: E402
from server.backends.loader import load_backend  # noqa: E402
from server.config import Config, force_offline  # noqa: E402
from testgen.pipeline import TestGenError, TestGenSettings, generate_tests  # noqa: E402
from testgen.sandbox import Sandbox  # noqa: E402

TARGETS = [("intervals", "def merge_intervals("), ("colors", "def rgb_to_hls("),
           ("shellwords", "def quote("), ("wildcard", "def translate(")]


def main() -> int:
    force_offline()
    here = Path(tempfile.gettempdir()) / "pingti-testgen-unfamiliar"
    here.mkdir(exist_ok=True)
    for name, mod in (("colors", colorsys), ("wildcard", fnmatch), ("shellwords", shlex)):
        (here / f"{name}.py").write_text(Path(str(mod.__file__)).read_text())
    shutil.copy(ROOT / "benchmarks" / "testgen_targets" / "intervals.py", here)
    only = sys.argv[1:] or [t[0] for t in TARGETS]
    backend = load_backend(Config())
    sandbox = Sandbox()
    with open(here / "diag.log", "a") as log:
        for module, marker in TARGETS:
            if module in only:
                print(run(module, marker, here, backend, sandbox, log))
    print(f"answers: {here / 'diag.log'}")
    return 0


def run(module: str, marker: str, here: Path, backend: ModelBackend, sandbox: Sandbox,
        log: TextIO) -> str:
    source = (here / f"{module}.py").read_text()
    ws = Path(tempfile.mkdtemp(prefix="pingti-tg-"))
    path = ws / f"{module}.py"
    path.write_text(source)
    line = next(i for i, t in enumerate(source.splitlines()) if t.startswith(marker))

    def model(prompt: str, max_new: int) -> str:
        ids = backend.encode(prompt, special=True)
        t = time.monotonic()
        res = backend.generate(GenerationRequest(ids, max_new), CancelToken())
        print(f"\n===== {module}: prompt {len(ids)} tok, answer {len(res.token_ids)} tok "
              f"({res.finish}) in {time.monotonic() - t:.0f}s\n--- PROMPT tail\n"
              f"{prompt[-1500:]}\n--- ANSWER\n{res.text}", file=log, flush=True)
        return str(res.text)

    t0 = time.monotonic()
    try:
        r = generate_tests(path, source, line + 1, None, ws, model, backend.info.special_tokens,
                           sandbox, TestGenSettings())
        out = (f"{module}: generated {r.generated} parsed {r.parsed} passed {r.passed} "
               f"kept {len(r.kept)} coverage {r.coverage_after:.0f}% "
               f"in {time.monotonic() - t0:.0f}s")
    except TestGenError as e:
        p = e.partial
        out = (f"{module}: {e} (generated {p.generated if p else 0}, parsed "
               f"{p.parsed if p else 0}, passed {p.passed if p else 0}) "
               f"in {time.monotonic() - t0:.0f}s")
    finally:
        shutil.rmtree(ws, ignore_errors=True)
    print(f"##### {out}", file=log, flush=True)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
