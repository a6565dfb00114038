"""Which function or class "Generate tests" is about, and how it is imported (testgen/extract.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from testgen.extract import NoTarget, Target, find_target, import_root, module_name

SOURCE = textwrap.dedent('''\
    """A module."""

    from __future__ import annotations

    import os
    from typing import (
        Any,
    )


    def plain(x):
        return x + 1


    def long_signature(
        a: int,
        b: str = "x",
    ) -> bool:
        """Check a and b."""
        import json

        return bool(json.dumps([a, b]))


    class Shape:
        """A shape."""

        sides = 4

        def area(self, scale: float = 1.0) -> float:
            return 1.0 * scale

        @property
        def name(self):
            return "shape"


    @staticmethod
    @some.decorator(1)
    def decorated(y):
        return y


    async def fetch(url):
        return url


    def outer():
        def inner():
            return 1

        return inner


    LAST = 1
    ''')
LINES = SOURCE.split("\n")


def line_of(fragment: str, start: int = 0) -> int:
    """The 0-based line of the first line containing ``fragment``."""
    return next(i for i, text in enumerate(LINES) if i >= start and fragment in text)


def at(fragment: str, character: int | None = None) -> Target:
    return find_target(SOURCE, line_of(fragment), character)


# --- functions, methods, classes -----------------------------------------------------------


def test_function_from_its_def_line_and_its_body() -> None:
    for fragment in ("def plain(x):", "return x + 1"):
        t = at(fragment)
        assert (t.name, t.qualname, t.kind) == ("plain", "plain", "function")
        assert t.enclosing_class is None
        assert t.source == "def plain(x):\n    return x + 1"
        assert t.signature == "def plain(x):"
        assert (t.start_line, t.end_line) == (line_of("def plain") + 1, line_of("return x + 1") + 1)
        assert not t.is_async


def test_method_has_its_class() -> None:
    t = at("return 1.0 * scale")
    assert (t.name, t.qualname, t.kind, t.enclosing_class) == ("area", "Shape.area", "method", "Shape")
    assert t.signature == "def area(self, scale: float = 1.0) -> float:"
    assert t.has_type_hints
    assert t.start_line == line_of("def area") + 1
    assert t.end_line == line_of("return 1.0 * scale") + 1


def test_decorated_method_is_a_method_with_its_decorator() -> None:
    t = at('return "shape"')
    assert (t.qualname, t.kind) == ("Shape.name", "method")
    assert t.source.startswith("@property\n")
    assert t.start_line == line_of("@property") + 1


@pytest.mark.parametrize("fragment", ["class Shape:", '"""A shape."""', "sides = 4"])
def test_class_from_its_line_or_an_attribute_line(fragment: str) -> None:
    t = at(fragment)
    assert (t.name, t.qualname, t.kind, t.enclosing_class) == ("Shape", "Shape", "class", None)
    assert t.signature == "class Shape:"
    assert t.docstring == '"""A shape."""'
    assert t.start_line == line_of("class Shape:") + 1
    assert t.end_line == line_of('return "shape"') + 1
    assert "def area" in t.source and "def name" in t.source
    assert not t.has_type_hints  # only functions have hints


def test_decorated_function_includes_its_decorators() -> None:
    t = at("return y")
    assert (t.name, t.kind) == ("decorated", "function")
    assert t.source.startswith("@staticmethod\n@some.decorator(1)\ndef decorated(y):")
    assert t.start_line == line_of("@staticmethod") + 1
    assert t.end_line == line_of("return y") + 1
    # The signature is the def line alone.
    assert t.signature == "def decorated(y):"


def test_async_function() -> None:
    t = at("return url")
    assert (t.name, t.kind, t.is_async) == ("fetch", "function", True)
    assert t.signature == "async def fetch(url):"
    assert t.source.startswith("async def fetch(url):")
    assert not at("def plain").is_async


def test_nested_function_is_refused_with_a_message() -> None:
    with pytest.raises(NoTarget, match="`inner` is nested inside a function"):
        at("def inner")
    with pytest.raises(NoTarget, match="outer function"):
        find_target(SOURCE, line_of("def inner") + 1)


def test_the_outer_function_around_a_nested_one() -> None:
    t = at("return inner")
    assert (t.name, t.kind) == ("outer", "function")


@pytest.mark.parametrize("fragment", ['"""A module."""', "import os", "LAST = 1", "Any,"])
def test_cursor_outside_any_definition(fragment: str) -> None:
    with pytest.raises(NoTarget, match="no Python function or class at the cursor"):
        at(fragment)


def test_blank_line_between_definitions_is_outside() -> None:
    blank = line_of("def plain") - 1
    assert LINES[blank] == ""
    with pytest.raises(NoTarget):
        find_target(SOURCE, blank)


def test_blank_line_inside_a_function_belongs_to_it() -> None:
    blank = line_of("import json") + 1
    assert LINES[blank] == ""
    assert find_target(SOURCE, blank).name == "long_signature"


@pytest.mark.parametrize("line", [-1, len(LINES), len(LINES) + 10])
def test_line_out_of_range(line: int) -> None:
    with pytest.raises(NoTarget, match="outside the document"):
        find_target(SOURCE, line)


def test_empty_document() -> None:
    with pytest.raises(NoTarget):
        find_target("", 0)
    with pytest.raises(NoTarget, match="outside the document"):
        find_target("", 1)


def test_no_target_is_a_value_error() -> None:
    # Callers that catch ValueError (bad input) also catch it.
    assert issubclass(NoTarget, ValueError)


# --- signature, docstring, imports, hints ----------------------------------------------------


def test_multi_line_signature_docstring_and_imports() -> None:
    t = at("return bool(json.dumps")
    assert t.name == "long_signature"
    assert t.signature == 'def long_signature(\n    a: int,\n    b: str = "x",\n) -> bool:'
    assert t.docstring == '"""Check a and b."""'
    assert t.has_type_hints
    assert t.imports.split("\n") == [
        "from __future__ import annotations",
        "import os",
        "from typing import (",
        "    Any,",
        ")",
    ]
    # An import inside a function is not a module import.
    assert "json" not in t.imports


def test_no_imports_and_no_docstring() -> None:
    t = find_target("def f(a):\n    return a\n", 1)
    assert t.imports == ""
    assert t.docstring == ""


def test_docstring_only_when_it_comes_first() -> None:
    t = find_target('def f():\n    x = 1\n    "not a docstring"\n    return x\n', 1)
    assert t.docstring == ""


@pytest.mark.parametrize(("code", "hints"), [
    ("def f(a, b=1, *args, **kw):\n    pass\n", False),
    ("def f(a: int):\n    pass\n", True),
    ("def f(a=1, b: int = 2):\n    pass\n", True),
    ("def f(*args: int):\n    pass\n", True),
    ("def f(a) -> int:\n    return 1\n", True),
    ("def f():\n    pass\n", False),
    ("def f():\n    x: int = 1\n    return x\n", False),  # annotations in the body are not hints
])
def test_has_type_hints(code: str, hints: bool) -> None:
    assert find_target(code, 0).has_type_hints is hints


# --- the column -------------------------------------------------------------------------------


def test_column_defaults_to_the_indentation() -> None:
    code = "def f():\n    return 1\n"
    assert find_target(code, 1).name == find_target(code, 1, 4).name == "f"


@pytest.mark.parametrize("text", ["é", "日本語", "😀"])
def test_non_ascii_before_the_cursor_column_is_code_points(text: str) -> None:
    middle = f'    s = "{text * 8}"  # {text}'
    last = f'    return s + "{text * 8}"'
    code = f"def f():\n{middle}\n{last}\n\n\nx = 1\n"
    # Every code-point column of a line inside the body, its end included, is inside f; a column
    # past the end of the line is clamped to it.
    for col in [*range(len(middle) + 1), len(middle) + 50]:
        assert find_target(code, 1, col).name == "f"
    # On the function's last line the end of the definition is right after the last code point:
    # a column counted wrongly (bytes, UTF-16 units) would overshoot it and find nothing.
    for col in range(len(last)):
        assert find_target(code, 2, col).name == "f"


def test_non_ascii_earlier_in_the_document_does_not_shift_lines() -> None:
    code = '"""Ünïcödé 😀 module."""\n\n\ndef g(x):\n    return "ü" + x\n'
    t = find_target(code, 4, 12)
    assert t.name == "g"
    assert (t.start_line, t.end_line) == (4, 5)
    assert t.source == 'def g(x):\n    return "ü" + x'


def test_crlf_line_endings() -> None:
    code = "def f():\r\n    return 1\r\n\r\nx = 2\r\n"
    assert find_target(code, 1).name == "f"
    with pytest.raises(NoTarget):
        find_target(code, 3)


# --- known bugs (strict xfail: they start passing when fixed) -----------------------------------


def test_cursor_at_the_end_of_the_last_line() -> None:
    code = "def f():\n    return 1\n\n\nx = 1\n"
    assert find_target(code, 1, len("    return 1")).name == "f"


def test_cursor_on_a_decorator_line() -> None:
    assert at("@some.decorator(1)").name == "decorated"


def test_cursor_on_a_method_decorator_line() -> None:
    assert at("@property").qualname == "Shape.name"


def test_class_nested_in_a_function_is_refused() -> None:
    code = "def factory():\n    class Local:\n        def m(self):\n            return 1\n"
    with pytest.raises(NoTarget):
        find_target(code, 1)


# --- module names and import roots ----------------------------------------------------------


def make_tree(root: Path, *files: str) -> None:
    for rel in files:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")


def test_package_module(tmp_path: Path) -> None:
    make_tree(tmp_path, "ws/pkg/__init__.py", "ws/pkg/sub/__init__.py", "ws/pkg/sub/mod.py")
    mod = tmp_path / "ws/pkg/sub/mod.py"
    root = import_root(mod, tmp_path / "ws")
    assert root == (tmp_path / "ws").resolve()
    assert module_name(mod, root) == "pkg.sub.mod"
    # No workspace: the same answer.
    assert import_root(mod, None) == (tmp_path / "ws").resolve()


def test_package_init_is_the_package(tmp_path: Path) -> None:
    make_tree(tmp_path, "pkg/__init__.py", "pkg/sub/__init__.py")
    for rel, name in (("pkg/__init__.py", "pkg"), ("pkg/sub/__init__.py", "pkg.sub")):
        path = tmp_path / rel
        root = import_root(path, tmp_path)
        assert root == tmp_path.resolve()
        assert module_name(path, root) == name


def test_plain_module_outside_any_package(tmp_path: Path) -> None:
    make_tree(tmp_path, "scripts/tool.py")
    mod = tmp_path / "scripts/tool.py"
    root = import_root(mod, tmp_path)
    assert root == (tmp_path / "scripts").resolve()
    assert module_name(mod, root) == "tool"


def test_folder_without_init_breaks_the_package_chain(tmp_path: Path) -> None:
    # src layout: src/ has no __init__.py, so imports start there.
    make_tree(tmp_path, "src/pkg/__init__.py", "src/pkg/core.py")
    mod = tmp_path / "src/pkg/core.py"
    root = import_root(mod, tmp_path)
    assert root == (tmp_path / "src").resolve()
    assert module_name(mod, root) == "pkg.core"


def test_workspace_bounds_the_import_root(tmp_path: Path) -> None:
    # The workspace itself is a package folder; the root does not climb above it.
    make_tree(tmp_path, "ws/__init__.py", "ws/pkg/__init__.py", "ws/pkg/mod.py")
    mod = tmp_path / "ws/pkg/mod.py"
    root = import_root(mod, tmp_path / "ws")
    assert root == (tmp_path / "ws").resolve()
    assert module_name(mod, root) == "pkg.mod"
    # Without the bound it climbs to the outermost package.
    unbounded = import_root(mod, None)
    assert unbounded == tmp_path.resolve()
    assert module_name(mod, unbounded) == "ws.pkg.mod"


def test_module_name_resolves_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, "pkg/__init__.py", "pkg/mod.py")
    monkeypatch.chdir(tmp_path)
    assert module_name(Path("pkg/mod.py"), tmp_path) == "pkg.mod"
    assert import_root(Path("pkg/mod.py"), Path(".")) == tmp_path.resolve()
