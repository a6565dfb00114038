"""The file's own examples, run against each candidate: doctests and asserts (Python).

Only what the user's file contains is used: ``>>>`` lines of the docstring of the function being
written (with their expected output, or written as ``>>> f(x) == y``), informal examples in that
docstring written as a call to the function followed by ``==``, ``=``, ``==>``, ``=>``, ``->``,
``➞``, ``→`` or ``returns`` (also after ``#``) and a value, inputs named as the function's
parameters ("Input: a = 1, b = 2 Output: 3", "For a = 1 the output should be 2"), and ``assert``
lines anywhere in the file that call the function.

All candidates run in one sandboxed process (``testgen/sandbox.py``, the isolation "Generate
tests" uses): each candidate's whole file (text before the cursor, the candidate, text after) is
executed in a fresh namespace under its own share of the time limit, then every example is
evaluated. What comes back per candidate is how many examples passed and a fingerprint of its
outputs on the examples' inputs, so candidates that behave alike can be grouped (MBR-exec,
AlphaCode's clustering).
"""

from __future__ import annotations

import ast
import json
import logging
import re
import shutil
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    call: str  # a Python expression (a call of the function, or an assert's condition)
    expected: str | None  # the expected value's source or doctest output; None: truthy


@dataclass(frozen=True)
class ExampleRun:
    """One candidate's results on the examples."""

    passed: int
    total: int
    fingerprint: str  # its outputs on the examples' inputs ('' when it did not run)

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.M)
# ``#`` before the arrow: ``f(1)  # => 2``, ``f(1)  # returns 2``; a lone ``=`` (``f(1) = 2``) is
# the mathematician's way of writing the same.
_ARROWS = r"#?\s*(?:==>|=>|->|➞|→|==|=(?!=)|\bshould return\b|\breturns\b|\bgives\b)"


def target_function(prefix: str) -> tuple[str, int] | None:
    """The name and start offset of the function whose body the cursor is in (the last ``def``
    before it), or None."""
    last = None
    for m in _DEF.finditer(prefix):
        last = m
    return (last.group(2), last.start()) if last is not None else None


def extract(prefix: str, suffix: str) -> list[Example]:
    """The examples about the function at the cursor, in file order, without repeats."""
    found = target_function(prefix)
    if found is None:
        return []
    name, start = found
    body = prefix[start:]  # its signature and docstring (the cursor is below them)
    out: list[Example] = []
    out += _doctests(body, name)
    out += _informal(body, name)
    out += _named_io(body, name)
    out += _asserts(prefix[:start] + "\n" + suffix, name)
    seen: set[Example] = set()
    unique = []
    for ex in out:
        # An expected value that calls the function itself is a definition ("f(3) = f(2) +
        # f(1)"), not an example.
        if ex not in seen and _is_expression(ex.call) and \
                (ex.expected is None or (ex.expected.strip() and not _calls(name, ex.expected))):
            seen.add(ex)
            unique.append(ex)
    return unique[:MAX_EXAMPLES]


# A docstring with dozens of examples is a test suite: a handful tells candidates apart.
MAX_EXAMPLES = 12


def _calls(name: str, expr: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", expr) is not None or \
        re.search(rf"\.{re.escape(name)}\s*\(", expr) is not None


def _doctests(body: str, name: str) -> list[Example]:
    lines = body.splitlines()
    out = []
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        if s.startswith(">>> "):
            call = s[4:].strip()
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith("... "):
                call += "\n" + lines[j].strip()[4:]
                j += 1
            expected = []
            while j < len(lines) and lines[j].strip() and \
                    not lines[j].strip().startswith(">>>") and '"""' not in lines[j] and \
                    "'''" not in lines[j]:
                expected.append(lines[j].strip())
                j += 1
            if _calls(name, call) and not expected:
                # ``>>> f(2) == 4`` without an output line: the comparison is the example.
                if (ex := _comparison(call, name)) is not None:
                    out.append(ex)
            elif _calls(name, call) and expected:
                text = "\n".join(expected)
                # Docstrings often run prose on without the blank line doctest wants.
                if len(expected) > 1 and not _is_expression(text) and \
                        _is_expression(expected[0]):
                    text = expected[0]
                out.append(Example(call, text))
            i = j
        else:
            i += 1
    return out


def _informal(body: str, name: str) -> list[Example]:
    out = []
    pattern = re.compile(rf"({re.escape(name)}\s*\(.*\))\s*{_ARROWS}\s*(.+?)\s*$")
    for line in body.splitlines():
        s = line.strip()
        if s.startswith(">>>"):
            continue
        m = pattern.search(s)
        if not m:
            continue
        call, expected = _balanced_call(m.group(1)), m.group(2).rstrip(".,;")
        if call and _is_expression(expected):
            out.append(Example(call, expected))
    return out


def _comparison(expr: str, name: str) -> Example | None:
    """``f(2) == 4`` as the example (call ``f(2)``, expected ``4``), when the left side calls
    the function."""
    tree = _parse(expr, "eval")
    node = tree.body if isinstance(tree, ast.Expression) else None
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
        left = ast.get_source_segment(expr, node.left)
        right = ast.get_source_segment(expr, node.comparators[0])
        if left and right and _calls(name, left):
            return Example(left, right)
    return None


# "Input: nums = [1, 2], k = 1  Output: 3" (LeetCode style) and "For lst = [1, 2] the output
# should be 3": the inputs named as the function's parameters (or one bare value for a
# one-parameter function), then the expected value.
_IO = re.compile(r"\bInput\s*:\s*(?P<args>.+?)\s*\bOutput\s*:\s*(?P<out>.+?)"
                 r"(?=\s*(?:\bExplanation\b|\bExample\b|\bInput\s*:|\bNote\b|"
                 r"\bConstraints?\b|#|\"\"\"|\'\'\'|$))", re.S)
_FOR = re.compile(r"\bFor\s+(?P<args>[A-Za-z_]\w*\s*=.+?),?\s+the\s+(?:output|result)\s+"
                  r"should\s+be\s+(?P<out>.+?)(?=\.?\s+(?:\bFor\b|[A-Z])|\.?\s*(?:\"\"\"|\'\'\'|$))",
                  re.S)


def _parameters(signature: str) -> list[str]:
    """The parameter names of ``def f(a, b=1)`` (its first lines), [] until they parse."""
    tree = _parse(signature.strip() + "\n    pass\n")
    node = tree.body[0] if isinstance(tree, ast.Module) and tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return []
    return [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]


def _named_io(body: str, name: str) -> list[Example]:
    """Input/Output and "For x = …, the output should be …" examples, turned into calls."""
    text = " ".join(body.split())
    found = [m for pattern in (_IO, _FOR) for m in pattern.finditer(text)]
    if not found:
        return []  # (most docstrings: no signature to parse)
    lines = body.splitlines()
    params = next((p for i in range(min(len(lines), 20))
                   if (p := _parameters("\n".join(lines[:i + 1])))), [])
    out = []
    for m in found if params else []:
        expected = m.group("out").strip().rstrip(".,;")
        call = _named_call(name, params, m.group("args").strip().rstrip(".,;"))
        if call is not None and _is_expression(expected):
            out.append(Example(call, expected))
    return out


def _named_call(name: str, params: list[str], args: str) -> str | None:
    """``f(nums=[1, 2], k=1)`` from ``nums = [1, 2], k = 1``; ``f([1, 2])`` from ``[1, 2]``
    when ``f`` takes one parameter; None when the names are not all the function's."""
    if _is_expression(args) and len(params) == 1 and not re.match(r"[A-Za-z_]\w*\s*=[^=]", args):
        return f"{name}({args})"
    # None for "grid : [[0, 1]] bucket_capacity : 2" and the like: not a call's arguments.
    tree = _parse(f"_f({args})", "eval")
    node = tree.body if isinstance(tree, ast.Expression) else None
    if not isinstance(node, ast.Call) or node.args or not node.keywords or \
            any(k.arg not in params for k in node.keywords):
        return None
    return f"{name}({args})" if len(node.keywords) == len(params) else None


def _balanced_call(text: str) -> str:
    """``f(1, 2)`` from ``f(1, 2)`` or ``f(1, 2) (meaning …)``: the call up to its own
    closing parenthesis."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[:i + 1]
    return ""


def _asserts(text: str, name: str) -> list[Example]:
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("assert ") or not _calls(name, s):
            continue
        cond = s[len("assert "):]
        tree = _parse(s)
        if not isinstance(tree, ast.Module) or not tree.body:
            continue
        node = tree.body[0]
        if isinstance(node, ast.Assert):
            cond = ast.get_source_segment(s, node.test) or cond
        out.append(Example(cond, None))
    return out


def _parse(text: str, mode: str = "exec") -> ast.AST | None:
    """``ast.parse`` without its SyntaxWarnings (docstring text is full of odd escapes), None
    when ``text`` does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, mode=mode)
    except (SyntaxError, ValueError):
        return None


def _is_expression(text: str) -> bool:
    return _parse(text, "eval") is not None


# --- running them ------------------------------------------------------------------------------

# Runs inside the sandbox. Reads job.json ({"programs": [...], "examples": [...], "seconds": s})
# and writes results.json: per program [passed, fingerprint]. Candidate code may print, read
# stdin, loop or raise: its output goes to a buffer, each program has its own alarm.
_HARNESS = r'''
import contextlib, io, json, signal, sys

job = json.load(open("job.json"))
seconds = float(job["seconds"])

class Timeout(BaseException):
    pass

def alarm(signum, frame):
    raise Timeout()

signal.signal(signal.SIGALRM, alarm)

def shown(value):
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."

def check(ns, call, expected):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            value = eval(call, ns)
    except Timeout:
        raise
    except BaseException as exc:
        return False, "!" + type(exc).__name__
    printed = out.getvalue().strip()
    if expected is None:
        return bool(value), shown(value)
    if value is None and printed:
        return printed == expected.strip(), printed
    try:
        want = eval(expected, ns)
    except BaseException:
        return shown(value) == expected.strip(), shown(value)
    try:
        same = bool(value == want) or shown(value) == shown(want)
    except BaseException:
        same = False
    return same, shown(value)

results = []
for program in job["programs"]:
    ns = {"__name__": "__pingti_candidate__"}
    signal.setitimer(signal.ITIMER_REAL, seconds)
    outputs, passed = [], 0
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(program, "<candidate>", "exec"), ns)
        for call, expected in job["examples"]:
            ok, shown_value = check(ns, call, expected)
            passed += ok
            outputs.append(shown_value)
        fingerprint = json.dumps(outputs)
    except Timeout:
        fingerprint = "!timeout"
    except BaseException as exc:
        fingerprint = "!" + type(exc).__name__
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    results.append([passed, fingerprint])
    with open("results.json", "w") as fh:
        json.dump(results, fh)
'''


class ExampleRunner:
    """Runs candidates against examples in the sandbox; one process per call."""

    def __init__(self, isolation: object, timeout_s: float) -> None:
        from testgen.sandbox import Isolation, Limits, Sandbox

        self.isolation = Isolation(getattr(isolation, "value", isolation))
        self.timeout_s = timeout_s
        self.limits = Limits(wall_s=timeout_s + 1.0, cpu_s=max(1, int(timeout_s) + 1),
                             memory_bytes=1 * 2**30, processes=16)
        self.sandbox = Sandbox(self.isolation, self.limits)

    def refusal(self) -> str | None:
        report = self.sandbox.report
        return None if report.usable else report.refusal()

    def run(self, programs: Sequence[str], examples: Sequence[Example],
            cancel: threading.Event | None = None) -> list[ExampleRun]:
        """One result per program. Raises RuntimeError when the sandbox cannot run them (the
        caller ranks without examples)."""
        if not programs or not examples:
            return [ExampleRun(0, len(examples), "") for _ in programs]
        if (why := self.refusal()) is not None:
            raise RuntimeError(why)
        workdir = self.sandbox.make_workdir()
        try:
            per = max(0.05, self.timeout_s / len(programs))
            job = {"programs": list(programs), "seconds": per,
                   "examples": [[e.call, e.expected] for e in examples]}
            (workdir / "job.json").write_text(json.dumps(job), encoding="utf-8")
            (workdir / "harness.py").write_text(_HARNESS, encoding="utf-8")
            res = self.sandbox.run(["python", "-I", "harness.py"], workdir, cancel=cancel)
            rows = _read(workdir / "results.json")
            if rows is None:
                raise RuntimeError(f"the examples did not run ({res.verdict.value}: "
                                   f"{(res.detail or res.stderr)[-300:]})")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        out = [ExampleRun(int(str(p)), len(examples), str(f)) for p, f in rows]
        # Programs the sandbox did not reach (it was killed): they pass nothing.
        out += [ExampleRun(0, len(examples), "!timeout")] * (len(programs) - len(out))
        return out


def _read(path: Path) -> list[tuple[object, object]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, list) or not all(isinstance(r, list) and len(r) == 2 for r in data):
        return None
    return [(r[0], r[1]) for r in data]
