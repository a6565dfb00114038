"""Turn a model's answer into individual pytest tests (pure, no I/O).

The answer is usually a fenced code block, sometimes several, sometimes with prose around it or
cut off mid-function at the token limit. Every top-level ``def test_*`` (or ``class Test*``)
becomes one :class:`TestCase`; imports, fixtures, helpers and constants go to a shared preamble;
top-level calls (``test_x()``, ``pytest.main()``, ``if __name__ == "__main__":``) are dropped.
A piece that does not parse on its own is dropped and counted, the others are kept; the last
piece, cut off at the token limit, keeps its complete lines. A test with several asserts becomes
one test per assert (with the statements before it), so one wrong guess costs one assert.
"""

from __future__ import annotations

import ast
import copy
import re
import textwrap
from dataclasses import dataclass, field

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
# A line where a new top-level piece starts (used only when the whole answer does not parse).
_TOP = re.compile(r"^(?:@|def |async def |class |import |from )", re.M)


@dataclass(frozen=True)
class TestCase:
    name: str  # test function or class name (what pytest selects with file::name)
    source: str


@dataclass
class ParsedTests:
    preamble: list[str] = field(default_factory=list)  # imports first, then helpers/fixtures
    tests: list[TestCase] = field(default_factory=list)
    dropped: int = 0  # pieces that did not parse

    @property
    def imports(self) -> list[str]:
        return [p for p in self.preamble if p.startswith(("import ", "from "))]


def extract_code(answer: str) -> str:
    """The Python code in ``answer``: its fenced blocks (python or untagged), else all of it."""
    blocks = [textwrap.dedent(body) for lang, body in _FENCE.findall(answer)
              if lang.lower() in ("", "python", "py", "python3", "pytest")]
    return "\n\n".join(b.strip("\n") for b in blocks) if blocks else answer


def _pieces(code: str) -> tuple[list[tuple[ast.stmt, str]], int]:
    """Top-level statements with their source; when the whole does not parse, parse it piece by
    piece (split at lines that start a top-level statement) and count the failures."""
    try:
        tree = ast.parse(code)
        return [(node, ast.get_source_segment(code, node, padded=False) or "")
                for node in tree.body], 0
    except SyntaxError:
        pass
    starts = [m.start() for m in _TOP.finditer(code)]
    if not starts:
        return [], 0  # prose, or nothing at the top level: no tests and nothing broken
    # Decorators belong to the definition below them.
    chunks: list[str] = []
    pending = ""
    for a, b in zip(starts, [*starts[1:], len(code)], strict=True):
        chunk = code[a:b]
        if chunk.startswith("@"):
            pending += chunk
            continue
        chunks.append(pending + chunk)
        pending = ""
    if pending:
        chunks.append(pending)
    out: list[tuple[ast.stmt, str]] = []
    dropped = 0
    for k, chunk in enumerate(chunks):
        text = chunk.rstrip() + "\n"
        try:
            tree = ast.parse(text)
        except SyntaxError:
            # The last piece is usually a test cut off at the token limit: its complete
            # statements are still a test.
            head = _complete_head(text) if k == len(chunks) - 1 else None
            if head is None:
                dropped += 1
                continue
            text = ast.unparse(head) + "\n"
            tree = ast.parse(text)
        out.extend((node, ast.get_source_segment(text, node, padded=False) or "")
                   for node in tree.body)
    return out, dropped


def _complete_head(text: str) -> ast.Module | None:
    """A definition cut off mid-statement, cut back to its last complete line (as long as it
    still checks something: an assert or ``pytest.raises``), or None."""
    lines = text.splitlines()
    for end in range(len(lines) - 1, 1, -1):
        try:
            tree = ast.parse("\n".join(lines[:end]) + "\n")
        except SyntaxError:
            continue
        # A test cut before its first check would pass whatever the code does.
        checks = any(isinstance(n, ast.stmt) and _is_check(n) for n in ast.walk(tree))
        return tree if tree.body and checks else None
    return None


# One test per assert: a long test fails as a whole on its first wrong guess, and a 0.5B model
# guesses some expected values wrong; each assert on its own is kept or dropped on its merit.
MAX_SPLIT = 12


Def = ast.FunctionDef | ast.AsyncFunctionDef


def split_asserts(node: Def) -> list[Def]:
    """``def test_x(): a = f(); assert p(a); assert q(a)`` as ``test_x_1`` (``a = f();
    assert p(a)``) and ``test_x_2`` (``a = f(); assert q(a)``): each check (a top-level
    ``assert`` or ``with pytest.raises(...)`` block) with every other statement before it,
    identical checks once, at most MAX_SPLIT. A test with one check, or whose checks are not
    all at its top level, stays as it is."""
    body = list(node.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # its docstring
    checks = [i for i, st in enumerate(body) if _is_check(st)]
    nested = any(isinstance(n, ast.Assert) for i, st in enumerate(body) if i not in checks
                 for n in ast.walk(st))
    if len(checks) < 2 or nested:
        return [node]
    out: list[Def] = []
    seen: set[str] = set()
    for i in checks:
        key = ast.dump(body[i])
        if key in seen:
            continue
        seen.add(key)
        setup = [st for j, st in enumerate(body[:i]) if j not in checks]
        part = copy.copy(node)  # the same signature and decorators, another name and body
        part.name, part.body = f"{node.name}_{len(out) + 1}", setup + [body[i]]
        out.append(part)
        if len(out) == MAX_SPLIT:
            break
    return out if len(out) > 1 else [node]


def _is_check(st: ast.stmt) -> bool:
    if isinstance(st, ast.Assert):
        return True
    return isinstance(st, ast.With) and any(
        isinstance(item.context_expr, ast.Call) and
        ast.unparse(item.context_expr.func).endswith(("raises", "warns"))
        for item in st.items)


def split_tests(answer: str, protected: frozenset[str] = frozenset(),
                one_per_check: bool = False) -> ParsedTests:
    """The answer's tests; with ``one_per_check`` (a model's answer, not a user's file) one per
    check (:func:`split_asserts`). A definition of a name in ``protected`` (the module's own
    names, imported by the test file) is dropped: a copy of the code under test in the test
    file would shadow it and test the copy."""
    code = extract_code(answer)
    parsed = ParsedTests()
    nodes, parsed.dropped = _pieces(code)
    imports: list[str] = []
    helpers: list[str] = []
    seen: set[str] = set()
    for node, src in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            src = _decorated_source(node, src)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if src not in imports:
                imports.append(src)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                node.name.startswith("test"):
            parts = split_asserts(node) if one_per_check else [node]
            for part in parts:
                part_src = src if part is node else ast.unparse(part)  # (with its decorators)
                new = _unique(part.name, seen)
                parsed.tests.append(TestCase(new, _rename(part_src, part.name, new)))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            new = _unique(node.name, seen)
            parsed.tests.append(TestCase(new, _rename(src, node.name, new)))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                node.name in protected:
            continue  # a copy of the code under test
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                               ast.Assign, ast.AnnAssign)):
            helpers.append(src)  # fixtures, helpers, constants
        # Everything else (calls, `if __name__ == ...`, prints) is not part of a test module.
    parsed.preamble = imports + helpers
    return parsed


def _decorated_source(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, src: str
                      ) -> str:
    if not node.decorator_list or src.lstrip().startswith("@"):
        return src
    decos = "".join(f"@{ast.unparse(d)}\n" for d in node.decorator_list)
    return decos + src


def _unique(name: str, seen: set[str]) -> str:
    new = name
    k = 2
    while new in seen:
        new = f"{name}_{k}"
        k += 1
    seen.add(new)
    return new


def _rename(src: str, old: str, new: str) -> str:
    if old == new:
        return src
    return re.sub(rf"^(\s*(?:async\s+)?(?:def|class)\s+){re.escape(old)}\b", rf"\g<1>{new}", src,
                  count=1, flags=re.M)


def rename_colliding(tests: list[TestCase], taken: set[str]) -> list[TestCase]:
    """Rename tests whose names are already used (e.g. in the file they are appended to), so
    appending never shadows a user's test."""
    out = []
    used = set(taken)
    for t in tests:
        new = t.name
        k = 2
        while new in used:
            new = f"{t.name}_{k}"
            k += 1
        used.add(new)
        out.append(TestCase(new, _rename(t.source, t.name, new)))
    return out


def defined_names(code: str) -> set[str]:
    """Top-level function and class names of a (test) module, best effort."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set(re.findall(r"^(?:async\s+)?(?:def|class)\s+(\w+)", code, re.M))
    return {n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def render_module(imports: list[str], helpers: list[str], tests: list[TestCase]) -> str:
    """A test module's text: imports, then helpers, then tests, two blank lines apart."""
    parts = ["\n".join(imports)] if imports else []
    parts += helpers
    parts += [t.source for t in tests]
    return "\n\n\n".join(p.strip("\n") for p in parts if p.strip()) + "\n"


# Modules a test may use without the model importing them: the test framework, and the
# standard library's (``pytest.raises`` without ``import pytest`` is the commonest slip).
_IMPORTABLE = frozenset({"pytest", "hypothesis"})


def missing_imports(imports: list[str], helpers: list[str], tests: list[TestCase]) -> list[str]:
    """``import X`` for each module name the tests or helpers use (``X.attr``) that nothing
    imports or defines: pytest, hypothesis and the standard library's modules only."""
    import sys

    code = "\n\n".join([*imports, *helpers, *(t.source for t in tests)])
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
            bound.update(a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg))
        elif isinstance(node, ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
    used = {node.value.id for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and isinstance(node.value.ctx, ast.Load)}
    known = _IMPORTABLE | frozenset(sys.stdlib_module_names)
    return [f"import {name}" for name in sorted(used - bound) if name in known
            and not name.startswith("_")]
