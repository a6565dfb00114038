"""Boundary hints: concrete inputs worth a test, read off the target's own code.

Pure (``ast`` only). A bug moves a boundary (``<`` for ``<=``, ``+ 1`` dropped, a check for an
empty list removed); tests that only try a typical value miss it. So the prompt names the
boundaries the code has: each comparison with a constant (the constant and its neighbours),
each comparison of two values (equal values), each ``raise`` with the condition that leads to
it, emptiness and None checks, slices, and parameters with defaults.
"""

from __future__ import annotations

import ast
import textwrap

MAX_HINTS = 8
_MAX_TEXT = 80


def boundary_hints(source: str, limit: int = MAX_HINTS) -> list[str]:
    """Short sentences, most specific first, at most ``limit``; [] when the source does not
    parse."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return []
    hints: list[str] = []

    def add(text: str) -> None:
        if text not in hints:
            hints.append(text)

    for raise_, condition in _raises(tree):
        exc = _exception_name(raise_)
        if exc:
            add(f"{exc} is raised when `{condition}`: test that it is raised (pytest.raises), "
                "and the nearest value for which it is not" if condition else
                f"{exc} is raised: test the input that raises it (pytest.raises)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for hint in _compare_hints(node):
                add(hint)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            add(f"the slice `{_show(node)}`: inputs shorter than, equal to and longer than it "
                "takes")
    for hint in _emptiness_hints(tree):
        add(hint)
    for hint in _default_hints(tree):
        add(hint)
    return hints[:limit]


def _show(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 1] + "…"


def _raises(tree: ast.AST) -> list[tuple[ast.Raise, str]]:
    """Each ``raise`` with the condition of the innermost ``if`` it is under ('' if none)."""
    found: list[tuple[ast.Raise, str]] = []

    def visit(node: ast.AST, condition: str) -> None:
        if isinstance(node, ast.Raise):
            found.append((node, condition))
        if isinstance(node, ast.If):
            for stmt in node.body:
                visit(stmt, _show(node.test))
            negated = f"not ({_show(node.test)})"
            for stmt in node.orelse:
                visit(stmt, negated)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) \
                and condition:
            return  # a nested function's raises have their own conditions
        for child in ast.iter_child_nodes(node):
            visit(child, condition)

    visit(tree, "")
    return found


def _exception_name(node: ast.Raise) -> str:
    exc = node.exc
    if isinstance(exc, ast.Call):
        exc = exc.func
    if exc is None:
        return ""
    return _show(exc)


def _compare_hints(node: ast.Compare) -> list[str]:
    out = []
    left = node.left
    for op, right in zip(node.ops, node.comparators, strict=True):
        if isinstance(op, (ast.Is, ast.IsNot)) and _is_none(right):
            out.append(f"`{_show(left)}` is None and is not None")
        elif isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)):
            number = _number(right) if _number(right) is not None else _number(left)
            other = left if _number(right) is not None else right
            if number is not None and not isinstance(number, bool):
                near = (f"{number - 1}, {number} and {number + 1}" if isinstance(number, int)
                        else f"just below, at and just above {number}")
                out.append(f"`{_show(node)}`: `{_show(other)}` equal to {near}")
            elif not isinstance(right, ast.Constant) and not isinstance(left, ast.Constant) \
                    and isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
                out.append(f"`{_show(node)}`: `{_show(left)}` equal to `{_show(right)}`, and "
                           "one more and one less")
        left = right
    return out


def _number(node: ast.AST) -> int | float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return -inner if inner is not None else None
    return None


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _function(tree: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The first function (the target, or a class target's first method)."""
    return next((n for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)


def _parameters(tree: ast.AST) -> list[ast.arg]:
    fn = _function(tree)
    if fn is None:
        return []
    args = fn.args
    return [a for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]
            if a.arg not in ("self", "cls")]


def _emptiness_hints(tree: ast.AST) -> list[str]:
    """``if not x`` / ``len(x) == 0`` on a parameter: the empty value."""
    params = {a.arg for a in _parameters(tree)}
    out = []
    for node in ast.walk(tree):
        test = node.test if isinstance(node, (ast.If, ast.While, ast.IfExp)) else None
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) \
                and isinstance(test.operand, ast.Name) and test.operand.id in params:
            out.append(f"`{test.operand.id}` empty (\"\", [], 0 or None as its type allows)")
    return out


def _default_hints(tree: ast.AST) -> list[str]:
    fn = _function(tree)
    if fn is None:
        return []
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults,
                     strict=True))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
              if d is not None]
    return [f"`{a.arg}` left out (default {_show(d)}) and given another value"
            for a, d in pairs if a.arg not in ("self", "cls")]
