"""Find the function or class to test at a position, with what a test writer needs to know.

Pure: text in, :class:`Target` out (tree-sitter, no imports of the user's code).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class NoTarget(ValueError):
    """There is no function or class at the position (the message says so for the user)."""


@dataclass(frozen=True)
class Target:
    name: str  # the function or class name
    qualname: str  # Class.method for a method
    kind: str  # "function", "method" or "class"
    source: str  # the definition, decorators included
    signature: str  # the `def ...:` / `class ...:` line(s)
    docstring: str
    imports: str  # the module's top-level import statements
    enclosing_class: str | None
    start_line: int  # 1-based, inclusive: the definition's line range in the file
    end_line: int
    has_type_hints: bool
    is_async: bool


@functools.cache
def _parser() -> Any:
    import tree_sitter
    import tree_sitter_python

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


def _text(node: Any) -> str:
    return str(node.text.decode("utf-8", "replace"))


def _definition(node: Any) -> Any:
    """``node`` with its decorators (the decorated_definition around it, if any)."""
    parent = node.parent
    return parent if parent is not None and parent.type == "decorated_definition" else node


def find_target(text: str, line: int, character: int | None = None) -> Target:
    """The innermost function/method/class whose lines (decorators included) contain the
    0-based ``line``: a method is preferred over its class, a nested function over the function
    around it. ``character`` (code points) only breaks ties between definitions on one line.
    """
    source = text.encode("utf-8")
    tree = _parser().parse(source)
    lines = text.split("\n")
    if not 0 <= line < max(1, len(lines)):
        raise NoTarget(f"line {line + 1} is outside the document")
    col = character if character is not None else 0
    byte_col = len(lines[line][:col].encode("utf-8"))
    best = None
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in ("function_definition", "class_definition"):
            outer = _definition(node)
            first, last = outer.start_point[0], node.end_point[0]
            if first <= line <= last:
                # On a line shared by two definitions (`def a(): ...; def b(): ...` is rare),
                # the one that starts before the cursor column wins.
                starts_before = (outer.start_point[0] < line
                                 or outer.start_point[1] <= byte_col)
                key = (last - first, not starts_before)
                if best is None or key < best[0]:
                    best = (key, node)
        stack.extend(node.named_children)
    if best is None:
        raise NoTarget("no Python function or class at the cursor; put it inside a `def` or "
                       "`class`")
    return _target(best[1], tree.root_node)


def _target(node: Any, root: Any) -> Target:
    name_node = node.child_by_field_name("name")
    name = _text(name_node) if name_node is not None else "?"
    classes: list[str] = []  # enclosing classes, innermost first
    p = node.parent
    while p is not None:
        if p.type == "class_definition":
            classes.append(_text(p.child_by_field_name("name")))
        elif p.type == "function_definition":
            # Defined inside a function: not reachable from a test module.
            raise NoTarget(f"`{name}` is nested inside a function and cannot be imported by a "
                           "test; put the cursor in the outer function")
        p = p.parent
    classes.reverse()
    # What a test imports is the outermost class; the qualified name reaches the target.
    enclosing = classes[0] if classes else None
    kind = "class" if node.type == "class_definition" else ("method" if enclosing else "function")
    full = _definition(node)
    body = node.child_by_field_name("body")
    sig_end = body.start_byte if body is not None else node.end_byte
    signature = node.text[: sig_end - node.start_byte].decode("utf-8", "replace").rstrip()
    docstring = ""
    if body is not None and body.named_child_count:
        first = body.named_children[0]
        if first.type == "expression_statement" and first.named_child_count and \
                first.named_children[0].type == "string":
            docstring = _text(first.named_children[0])
    hints = False
    if node.type == "function_definition":
        params = node.child_by_field_name("parameters")
        hints = node.child_by_field_name("return_type") is not None or any(
            c.type in ("typed_parameter", "typed_default_parameter")
            for c in (params.named_children if params is not None else []))
    is_async = any(c.type == "async" for c in node.children)
    imports = "\n".join(_text(c) for c in root.named_children
                        if c.type in ("import_statement", "import_from_statement",
                                      "future_import_statement"))
    return Target(
        name=name,
        qualname=".".join([*classes, name]),
        kind=kind,
        source=_text(full),
        signature=signature,
        docstring=docstring,
        imports=imports,
        enclosing_class=enclosing,
        start_line=full.start_point[0] + 1,
        end_line=node.end_point[0] + 1,
        has_type_hints=hints,
        is_async=is_async,
    )


def module_name(path: Path, root: Path) -> str:
    """The dotted import name of ``path`` relative to the import root ``root``."""
    rel = path.resolve().relative_to(root.resolve()).with_suffix("")
    parts = list(rel.parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_root(path: Path, workspace: Path | None) -> Path:
    """Where ``import <module>`` must start for ``path``: above its outermost package (folders
    with ``__init__.py``), or ``src/`` in a src layout; never above the workspace."""
    d = path.resolve().parent
    while (d / "__init__.py").exists() and d.parent != d:
        if workspace is not None and d == workspace.resolve():
            break
        d = d.parent
    return d
