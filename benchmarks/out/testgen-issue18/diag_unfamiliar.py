"""Issue 18 diagnosis: run Generate tests on unfamiliar real modules, log the model's answers.

    .venv/bin/python benchmarks/out/testgen-issue18/diag_unfamiliar.py [colors shellwords wildcard]

The targets are stdlib modules (PSF licence) copied under new names into a scratch folder;
each target's answers and the outcome go to diag.log there."""
import sys, time, json, shutil, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from server.backends.base import CancelToken, GenerationRequest
from server.backends.loader import load_backend
from server.config import Config, force_offline
from testgen.pipeline import TestGenError, TestGenSettings, generate_tests
from testgen.sandbox import Sandbox

force_offline()
import colorsys, fnmatch, shlex
HERE = Path(tempfile.gettempdir()) / "pingti-testgen-unfamiliar"
HERE.mkdir(exist_ok=True)
for name, mod in (("colors", colorsys), ("wildcard", fnmatch), ("shellwords", shlex)):
    (HERE / f"{name}.py").write_text(Path(mod.__file__).read_text())
shutil.copy(Path(__file__).resolve().parents[2] / "testgen_targets" / "intervals.py", HERE)
TARGETS = [("intervals", "def merge_intervals("), ("colors", "def rgb_to_hls("), ("shellwords", "def quote("), ("wildcard", "def translate(")]
only = sys.argv[1:] or [t[0] for t in TARGETS]
backend = load_backend(Config())
sandbox = Sandbox()
log = open(HERE / "diag.log", "a")
for module, marker in TARGETS:
    if module not in only:
        continue
    source = (HERE / f"{module}.py").read_text()
    ws = Path(tempfile.mkdtemp(prefix="tg18-"))
    path = ws / f"{module}.py"
    path.write_text(source)
    line = next(i for i, t in enumerate(source.splitlines()) if t.startswith(marker))
    def model(prompt, max_new):
        ids = backend.encode(prompt, special=True)
        t = time.monotonic()
        res = backend.generate(GenerationRequest(ids, max_new), CancelToken())
        print(f"\n===== {module}: prompt {len(ids)} tok, answer {len(res.token_ids)} tok "
              f"({res.finish}) in {time.monotonic()-t:.0f}s\n--- PROMPT tail\n{prompt[-1500:]}\n--- ANSWER\n{res.text}",
              file=log, flush=True)
        return res.text
    t0 = time.monotonic()
    try:
        r = generate_tests(path, source, line + 1, None, ws, model, backend.info.special_tokens,
                           sandbox, TestGenSettings())
        print(f"##### {module}: generated {r.generated} parsed {r.parsed} passed {r.passed} "
              f"kept {len(r.kept)} cov {r.coverage_after:.0f} in {time.monotonic()-t0:.0f}s", file=log, flush=True)
    except TestGenError as e:
        p = e.partial
        print(f"##### {module}: ERROR {e} generated {p and p.generated} parsed {p and p.parsed} "
              f"passed {p and p.passed} in {time.monotonic()-t0:.0f}s", file=log, flush=True)
    shutil.rmtree(ws, ignore_errors=True)
