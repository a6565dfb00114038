"""Runs inside the sandbox: a test file once on the original module, then once per mutant.

    python _mutdriver.py spec.json      (prints one JSON object on stdout)

pytest is imported once; every run is a forked child (so a mutant never leaks into the next
run, and a run costs the tests' own time, not pytest's start-up). A child loads its mutant's
source under the module's name before pytest imports the test file, records each call of the
target (arguments, result or exception, and for methods the object's state after it) as a
digest, and is killed by SIGALRM when it runs past the timeout (an endless loop a mutant made
counts as caught, as in every mutation tool). Standard library only: this file runs with the
sandbox's interpreter and the project's packages, nothing of pingti's.

The spec: {"module", "file", "qualname", "kind", "test_file", "mutants": [source, ...],
"timeout_s", "probes": [file, ...]}. The answer: {"original": RUN, "mutants": [RUN, ...]} with
RUN = {"status": "passed"|"failed"|"timeout"|"error", "failed": [test names], "digest", "calls",
"seconds", "probe_digest", "probe_calls"}. The probes are more calls of the target (every test
the model wrote, passing or not, and the docstring's examples) whose outcome does not matter:
only what the target did in them is recorded, for the original and for each mutant the tests
do not catch, so "equivalent-looking" means the same on all of those inputs too.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import os
import re
import signal
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
MAX_CALLS = 20000  # calls recorded per run (the digest covers the first ones)
MAX_REPR = 2000


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ is the object's business
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return _ADDRESS.sub("", text)[:MAX_REPR]


class _Recorder:
    """Wraps the target's callables and hashes what each call did."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.calls = 0

    def note(self, *parts: str) -> None:
        if self.calls < MAX_CALLS:
            self.hash.update("\x1f".join(parts).encode("utf-8", "replace") + b"\x1e")
        self.calls += 1

    def wrap(self, fn: Any, name: str, method: bool) -> Any:
        recorder = self

        @functools.wraps(fn)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            shown = _show((args[1:] if method else args, sorted(kwargs.items())))
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                state = _state(args[0]) if method and args else ""
                recorder.note(name, shown, "raised", type(exc).__name__, _show(str(exc)), state)
                raise
            state = _state(args[0]) if method and args else ""
            recorder.note(name, shown, "returned", _show(result), state)
            return result

        return recorded


def _state(obj: Any) -> str:
    try:
        return _show(sorted(vars(obj).items()))
    except TypeError:
        return ""


def _install(recorder: _Recorder, module: Any, qualname: str, kind: str) -> None:
    """Replace the target (a function, a method, or each plain method of a class) by its
    recorded wrapper, where the tests will look it up."""
    parts = qualname.split(".")
    owner = module
    for part in parts[:-1]:
        owner = getattr(owner, part)
    obj = getattr(owner, parts[-1])
    special = (staticmethod, classmethod, property, type)
    if kind == "class":
        for name, value in list(vars(obj).items()):
            if callable(value) and not isinstance(value, special) \
                    and (not name.startswith("__") or name == "__init__"):
                setattr(obj, name, recorder.wrap(value, name, True))
        return
    raw = vars(owner).get(parts[-1]) if isinstance(owner, type) else obj
    if callable(obj) and not isinstance(raw, special):
        setattr(owner, parts[-1], recorder.wrap(obj, qualname, kind == "method"))


def _load(module: str, path: str, source: str | None) -> Any:
    if source is None:
        return importlib.import_module(module)
    parent, _, last = module.rpartition(".")
    if parent:
        importlib.import_module(parent)
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    exec(compile(source, path, "exec"), mod.__dict__)  # noqa: S102 - the mutant under test
    if parent:
        setattr(sys.modules[parent], last, mod)
    return mod


def _failed_tests(report: str) -> list[str]:
    try:
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        return []
    names = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            classname = case.get("classname", "").rsplit(".", 1)[-1]
            names.append(classname if classname.startswith("Test")
                         else case.get("name", "").split("[", 1)[0])
    return sorted(set(names))


def _child(spec: dict[str, Any], source: str | None, tag: str, timeout: float,
           files: list[str]) -> None:
    import pytest

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    signal.setitimer(signal.ITIMER_REAL, timeout)  # SIGALRM's default action ends the child
    recorder = _Recorder()
    code = 3
    try:
        mod = _load(spec["module"], spec["file"], source)
        _install(recorder, mod, spec["qualname"], spec["kind"])
        code = int(pytest.main(["-p", "no:cacheprovider", "-q", "-o", "addopts=", "--rootdir",
                                os.getcwd(), f"--junitxml=report-{tag}.xml", *files]))
    except BaseException:  # noqa: BLE001 - a mutant that breaks the import is caught too
        code = 4
    with open(f"calls-{tag}.json", "w") as out:
        json.dump({"digest": recorder.hash.hexdigest(), "calls": recorder.calls}, out)
    os._exit(code)


def _run(spec: dict[str, Any], source: str | None, tag: str, timeout: float,
         files: list[str] | None = None) -> dict[str, Any]:
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(spec, source, tag, timeout, files or [spec["test_file"]])
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - t0
    if os.WIFSIGNALED(status):
        killed_by = os.WTERMSIG(status)
        return {"status": "timeout" if killed_by == signal.SIGALRM else "error",
                "failed": [], "digest": "", "calls": 0, "seconds": seconds,
                "signal": killed_by}
    code = os.WEXITSTATUS(status)
    try:
        with open(f"calls-{tag}.json") as f:
            calls = json.load(f)
    except (OSError, ValueError):
        calls = {"digest": "", "calls": 0}
    status_name = {0: "passed", 1: "failed"}.get(code, "error")
    return {"status": status_name, "failed": _failed_tests(f"report-{tag}.xml"),
            "digest": calls["digest"], "calls": calls["calls"], "seconds": seconds,
            "code": code}


def _preload_plugins() -> None:
    """Import pytest's installed plugins once, before the forks: pytest.main loads them on
    every run, and some import a lot (a second per run otherwise)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="pytest11"):
        try:
            ep.load()
        except Exception:  # noqa: BLE001 - pytest will report a broken plugin itself
            pass
    try:  # Hypothesis' plugin imports all of Hypothesis when a run ends (0.9 s)
        import hypothesis  # noqa: F401
    except ImportError:
        pass


def _probe(run: dict[str, Any], probe: dict[str, Any]) -> None:
    """What the target did in the probe run (whether its tests passed does not matter; one
    that ran out of time says nothing)."""
    ok = probe["status"] in ("passed", "failed")
    run["probe_digest"] = probe["digest"] if ok else ""
    run["probe_calls"] = probe["calls"] if ok else 0


def main() -> int:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    sys.path.insert(0, os.getcwd())  # the test file's folder, as pytest's rootdir insertion
    import pytest  # noqa: F401 - imported once, before the forks

    _preload_plugins()

    probes = list(spec.get("probes") or [])
    original = _run(spec, None, "original", float(spec["timeout_s"]) * 4)
    # A mutant gets a few times the original's time (a slow machine is not a caught mutant).
    timeout = max(float(spec["timeout_s"]), original["seconds"] * 5)
    if probes:
        _probe(original, _run(spec, None, "probe-original", timeout * 2, probes))
    runs = []
    for i, source in enumerate(spec["mutants"]):
        run = _run(spec, source, str(i), timeout)
        if probes and run["status"] == "passed":
            _probe(run, _run(spec, source, f"probe-{i}", timeout * 2, probes))
        runs.append(run)
    sys.stdout.write(json.dumps({"original": original, "mutants": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
