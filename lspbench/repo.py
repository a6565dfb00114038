"""The ``repo`` suite: line holes whose right answer names a symbol defined in another module of
the same project (CrossCodeEval's setting, Ding et al., 2023), cut from real multi-module
Python projects.

**Projects** (:data:`PROJECTS`): pinned sdists from PyPI, fetched once with ``pip download``
and unpacked under ``<cache>/lspbench-repos`` (``cache_root()``: ``~/.cache/pingti``). Each
sdist's sha256 is checked, so every machine cuts the same holes from the same bytes. The cached
trees are never written: a run works on a copy (the workspace), and the tests on another copy.

**Holes** (:func:`find_holes`), from Python's ``ast``: inside function bodies of a module M, a
use of a name that another module N of the project defines at top level (function, class,
exception, constant) or as a member of a top-level class (method, class attribute, an attribute
its methods set on ``self``). The use is found when M reaches it through

* a name imported from the project (``from .x import name``, ``from pkg.x import name as y``,
  ``from . import name``; re-exports through ``__init__`` are followed to the defining module);
* an attribute of an imported project module (``import pkg.x as y`` + ``y.name``,
  ``from . import x`` + ``x.name``, ``pkg.x.name``);
* an attribute of a project class or of an instance of one, where the instance's class is
  known: a parameter annotated with the class, a local assigned once from ``Class(...)``,
  ``Class(...).name``, and ``self``/``cls`` in a method of a class whose (project) base class
  defines the name.

The hole is that line from the first such identifier on (the cursor stands right before it,
after ``y.`` for an attribute); the expected completion is the rest of the line without its
trailing comment. Lines are skipped when the rest is shorter than :data:`MIN_REST` characters,
when the line does not end its statement (an open bracket or a backslash continues it: the
first line of a suggestion could not be compared), in test files and in folders a project lists
as vendored. What the rules cannot see: names reached through ``getattr``/``importlib``, star
imports, instances whose class needs real type inference (return values, containers,
reassigned locals), inherited members of classes outside the project. Holes are sampled with a
fixed seed: at most ``per_file`` per module, then ``per_project`` per project.

**Tests** (:class:`ProjectTests`): for a project whose tests run here, a hole's tests are the
project's test files whose imports reach the hole's module (the transitive import graph of the
project, static). The filled module is written into a fresh copy of the project, and the tests
run with the project's runner (``pytest -x`` or ``unittest -f``) in pingti's sandbox
(testgen.sandbox: bubblewrap, rlimits, a wall-clock timeout; no network). A hole counts only if
the same tests pass with the original line and fail with the line's symbol replaced by an
undefined name (so they execute the line); this baseline is cached per task and environment.
"""

from __future__ import annotations

import ast
import enum
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import tokenize
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testgen.sandbox import NOBODY, Isolation, Limits, Sandbox, Verdict

# A rest of line shorter than this (``x)``, ``[0]``) says little about the symbol.
MIN_REST = 4
# Per module and per project: enough holes for a paired comparison (about 150 over the suite),
# spread over many modules so no one file dominates.
PER_FILE = 10
PER_PROJECT = 40
SAMPLE_SEED = 0
# Resolution of re-exports and base classes stops this deep (cycles, long chains).
MAX_DEPTH = 8


class Runner(enum.Enum):
    PYTEST = "pytest"
    UNITTEST = "unittest"


class OpenDocs(enum.Enum):
    """Which documents the client opens besides the hole's file."""

    ALL = "all"  # every module of the project, as editor tabs (the setting)
    HOLE = "hole"  # only the hole's file


class SymbolKind(enum.Enum):
    FUNCTION = "function"
    CLASS = "class"
    EXCEPTION = "exception"
    CONSTANT = "constant"
    VARIABLE = "variable"
    METHOD = "method"
    ATTRIBUTE = "attribute"


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    filename: str  # what pip download writes
    sha256: str

    @property
    def tree_name(self) -> str:
        return self.filename.removesuffix(".tar.gz")


@dataclass(frozen=True)
class Project:
    """A project of the suite and how its tests run."""

    key: str  # the suite's name for it (``--projects``)
    sdist: Sdist
    package: str  # the import package
    source_root: str = ""  # where ``package`` lives in the tree ("src" for a src layout)
    tests: str | None = "tests"  # the test folder in the tree; None: the sdist has no tests
    runner: Runner = Runner.PYTEST
    runner_args: tuple[str, ...] = ()
    test_requires: tuple[Sdist, ...] = ()  # pure-Python test dependencies, put on PYTHONPATH
    exclude: tuple[str, ...] = ()  # module folders (relative to the package) left out


# Chosen because their modules import each other a lot and their sdists ship tests that pass
# here with pingti's pytest. boltons was left out: its modules are deliberately standalone.
PROJECTS: dict[str, Project] = {p.key: p for p in (
    Project("toolz", Sdist("toolz", "1.0.0", "toolz-1.0.0.tar.gz",
                           "2c86e3d9a04798ac556793bced838816296a2f085017664e4995cb40a1047a02"),
            "toolz", tests="toolz/tests"),
    Project("packaging", Sdist("packaging", "25.0", "packaging-25.0.tar.gz",
                               "d443872c98d677bf60f6a1f2f8c1cb748e8fe762d2bf9d3148b5599295b0fc4f"),
            "packaging", source_root="src",
            # Its tests mock with pretend (one pure-Python module).
            test_requires=(Sdist("pretend", "1.0.9", "pretend-1.0.9.tar.gz",
                                 "c90eb810cde8ebb06dafcb8796f9a95228ce796531bc806e794c2f4649aa1b10"),)),
    Project("markdown", Sdist("markdown", "3.8", "markdown-3.8.tar.gz",
                              "7df81e63f0df5c4b24b7d156eb81e4690595239b7d70937d0409f1b0de319c6f"),
            # unittest, as its tox.ini: test_legacy.py turns warnings into errors at import,
            # which breaks pytest's collection.
            "markdown", runner=Runner.UNITTEST),
    Project("more-itertools",
            Sdist("more-itertools", "10.7.0", "more_itertools-10.7.0.tar.gz",
                  "9fddd5403be01a94b204faadcff459ec3568cf110265d3c54323e1e866ad29d3"),
            "more_itertools"),
    Project("tomli", Sdist("tomli", "2.2.1", "tomli-2.2.1.tar.gz",
                           "cd45e1dc79c835ce60f7404ec8119f2eb06d38b1deba146f07ced3bbc44505ff"),
            "tomli", source_root="src", tests=None),
)}


class RepoError(Exception):
    """A project that cannot be fetched or read; the message says which and why."""


# --- fetching ---------------------------------------------------------------------------------


def repos_dir() -> Path:
    from server.model_assets import cache_root

    return cache_root() / "lspbench-repos"


def fetch(sdist: Sdist, cache: Path) -> Path:
    """The unpacked tree of ``sdist`` in ``cache``, downloaded and checked the first time."""
    tree = cache / "trees" / sdist.tree_name
    if (tree / ".lspbench-complete").exists():
        return tree
    archive = cache / "sdists" / sdist.filename
    if not archive.exists():
        _download(sdist, archive.parent)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sdist.sha256:
        raise RepoError(f"{archive}: sha256 {digest}, expected {sdist.sha256}; remove the file "
                        "to download it again")
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")  # no links out, no device files
        unpacked = staging / sdist.tree_name
        if not unpacked.is_dir():
            raise RepoError(f"{archive}: no top folder {sdist.tree_name}")
        (unpacked / ".lspbench-complete").write_text(sdist.sha256 + "\n", encoding="utf-8")
        tree.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tree, ignore_errors=True)  # a copy left by an interrupted unpack
        unpacked.rename(tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tree


def _download(sdist: Sdist, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", "-q", f"{sdist.name}=={sdist.version}", "-d",
           str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not (folder / sdist.filename).exists():
        raise RepoError(f"pip could not download {sdist.name}=={sdist.version}: "
                        f"{proc.stderr.strip()[-500:]}")


# --- modules and their definitions ------------------------------------------------------------


@dataclass(frozen=True)
class Symbol:
    """A name defined in the project: where a hole's answer comes from."""

    name: str  # the identifier as written at the use
    qualname: str  # module[.Class].name
    kind: SymbolKind
    file: str  # defining file, relative to the project's tree
    line: int  # 1-based

    @property
    def module(self) -> str:
        return self.qualname.rsplit(".", 2 if self.kind in _MEMBER_KINDS else 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "qualname": self.qualname, "kind": self.kind.value,
                "file": self.file, "line": self.line}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Symbol:
        return cls(row["name"], row["qualname"], SymbolKind(row["kind"]), row["file"],
                   int(row["line"]))


_MEMBER_KINDS = (SymbolKind.METHOD, SymbolKind.ATTRIBUTE)


@dataclass(frozen=True)
class ImportRef:
    module: str  # a project module
    name: str | None  # None: the import binds the module itself


@dataclass
class ClassInfo:
    name: str
    line: int
    members: dict[str, tuple[SymbolKind, int]]
    bases: list[ast.expr]


@dataclass
class Module:
    name: str  # dotted; a package is its ``__init__``
    file: str  # relative to the tree
    is_package: bool
    text: str
    tree: ast.Module
    defs: dict[str, tuple[SymbolKind, int]] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    imports: dict[str, ImportRef] = field(default_factory=dict)


def is_test_file(rel: Path) -> bool:
    name = rel.name
    return (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
            or any(part in ("tests", "test", "testing") for part in rel.parts[:-1]))


def module_files(project: Project, tree: Path) -> list[Path]:
    """The project's modules (not its tests, not excluded folders), sorted, relative to the
    tree."""
    base = tree / project.source_root / project.package
    out = []
    for path in sorted(base.rglob("*.py")):
        rel_pkg = path.relative_to(base)
        if is_test_file(rel_pkg) or any(rel_pkg.is_relative_to(x) for x in project.exclude):
            continue
        out.append(path.relative_to(tree))
    return out


def module_name(project: Project, rel: Path) -> str:
    parts = list(rel.relative_to(project.source_root).with_suffix("").parts) \
        if project.source_root else list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load_modules(project: Project, tree: Path) -> dict[str, Module]:
    """The project's modules by dotted name, with their definitions and project imports. A
    module that does not parse, or uses ``\\r`` line breaks (positions are counted on ``\\n``),
    is left out."""
    modules: dict[str, Module] = {}
    for rel in module_files(project, tree):
        text = (tree / rel).read_bytes().decode("utf-8", "replace")
        if "\r" in text:
            continue
        try:
            parsed = ast.parse(text)
        except SyntaxError:
            continue
        name = module_name(project, rel)
        modules[name] = Module(name, rel.as_posix(), rel.name == "__init__.py", text, parsed)
    for m in modules.values():
        m.defs, m.classes = _definitions(m.tree)
        m.imports = _project_imports(m.tree, m.name, m.is_package, project.package, modules)
    return modules


def _definitions(tree: ast.Module) -> tuple[dict[str, tuple[SymbolKind, int]],
                                             dict[str, ClassInfo]]:
    defs: dict[str, tuple[SymbolKind, int]] = {}
    classes: dict[str, ClassInfo] = {}
    for node in _top_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defs[node.name] = (SymbolKind.FUNCTION, node.lineno)
        elif isinstance(node, ast.ClassDef):
            kind = SymbolKind.EXCEPTION if _looks_like_exception(node) else SymbolKind.CLASS
            defs[node.name] = (kind, node.lineno)
            classes[node.name] = ClassInfo(node.name, node.lineno, _members(node), node.bases)
        else:
            for target in _assigned(node):
                kind = SymbolKind.CONSTANT if target.isupper() else SymbolKind.VARIABLE
                defs.setdefault(target, (kind, node.lineno))
    return defs, classes


def _top_level(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, looking into ``if``/``try`` blocks (version checks, optional
    imports) but not into functions or classes."""
    for node in body:
        if isinstance(node, ast.If):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body)
            for handler in node.handlers:
                yield from _top_level(handler.body)
            yield from _top_level(node.orelse)
            yield from _top_level(node.finalbody)
        else:
            yield node


def _assigned(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _looks_like_exception(node: ast.ClassDef) -> bool:
    names = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
             for b in node.bases]
    return any(n.endswith(("Error", "Exception", "Warning")) for n in [node.name, *names])


def _members(node: ast.ClassDef) -> dict[str, tuple[SymbolKind, int]]:
    """Methods and class attributes, and the attributes its methods set on ``self``."""
    members: dict[str, tuple[SymbolKind, int]] = {}
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            members[item.name] = (SymbolKind.METHOD, item.lineno)
        else:
            for target in _assigned(item):
                members.setdefault(target, (SymbolKind.ATTRIBUTE, item.lineno))
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.args.args:
            me = item.args.args[0].arg
            for n in ast.walk(item):
                if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and \
                        isinstance(n.value, ast.Name) and n.value.id == me:
                    members.setdefault(n.attr, (SymbolKind.ATTRIBUTE, n.lineno))
    return members


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, *([node.module] if node.module else [])])


def _project_imports(tree: ast.Module, module: str, is_package: bool, package: str,
                     modules: dict[str, Module]) -> dict[str, ImportRef]:
    """Local name → what it imports from the project, for every import in the module
    (including those inside functions: projects import there to break cycles)."""
    out: dict[str, ImportRef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != package:
                    continue
                if alias.asname:
                    out[alias.asname] = ImportRef(alias.name, None)
                else:  # ``import pkg.x`` binds ``pkg``
                    out[alias.name.split(".")[0]] = ImportRef(package, None)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            if source.split(".")[0] != package:
                continue
            for alias in node.names:
                if alias.name == "*":
                    continue
                sub = f"{source}.{alias.name}"
                ref = ImportRef(sub, None) if sub in modules else ImportRef(source, alias.name)
                out[alias.asname or alias.name] = ref
    return out


# --- resolving uses ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleRef:
    module: str


@dataclass(frozen=True)
class ClassRef:
    module: str
    name: str
    instance: bool
    skip_own: bool = False  # ``self``: the class's own members are not another module's


Ref = ModuleRef | ClassRef | Symbol


def resolve(modules: dict[str, Module], module: str, name: str, depth: int = 0
            ) -> Symbol | ModuleRef | None:
    """What ``module.name`` is, following re-exports to the defining module."""
    info = modules.get(module)
    if info is None or depth > MAX_DEPTH:
        return None
    if name in info.defs:
        kind, line = info.defs[name]
        return Symbol(name, f"{module}.{name}", kind, info.file, line)
    if name in info.imports:
        return resolve_ref(modules, info.imports[name], depth + 1)
    if f"{module}.{name}" in modules:
        return ModuleRef(f"{module}.{name}")
    return None


def resolve_ref(modules: dict[str, Module], ref: ImportRef, depth: int = 0
                ) -> Symbol | ModuleRef | None:
    if ref.name is None:
        return ModuleRef(ref.module) if ref.module in modules else None
    return resolve(modules, ref.module, ref.name, depth)


def member(modules: dict[str, Module], cls: ClassRef, attr: str, depth: int = 0
           ) -> Symbol | None:
    """``attr`` of a project class: its own member, else its project base classes'."""
    info = modules.get(cls.module)
    if info is None or depth > MAX_DEPTH or cls.name not in info.classes:
        return None
    klass = info.classes[cls.name]
    if attr in klass.members:
        if cls.skip_own and depth == 0:
            return None
        kind, line = klass.members[attr]
        return Symbol(attr, f"{cls.module}.{cls.name}.{attr}", kind, info.file, line)
    for base in klass.bases:
        ref = _Scope(modules, info).ref(base)
        if isinstance(ref, Symbol) and ref.kind in (SymbolKind.CLASS, SymbolKind.EXCEPTION):
            found = member(modules, ClassRef(ref.module, ref.qualname.rsplit(".", 1)[1], True),
                           attr, depth + 1)
            if found is not None:
                return found
    return None


class _Scope:
    """Evaluates expressions of one function (or of the module level) to project references."""

    def __init__(self, modules: dict[str, Module], module: Module,
                 local_names: frozenset[str] = frozenset(),
                 local_types: dict[str, ClassRef] | None = None) -> None:
        self.modules, self.module = modules, module
        self.local_names, self.local_types = local_names, local_types or {}

    def ref(self, node: ast.expr) -> Ref | None:
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            base = self.ref(node.value)
            if isinstance(base, ModuleRef):
                return resolve(self.modules, base.module, node.attr)
            if isinstance(base, ClassRef):
                return member(self.modules, base, node.attr)
            if isinstance(base, Symbol) and base.kind in (SymbolKind.CLASS, SymbolKind.EXCEPTION):
                return member(self.modules, _class_of(base, instance=False), node.attr)
            return None
        if isinstance(node, ast.Call):
            called = self.ref(node.func)
            if isinstance(called, Symbol) and called.kind in (SymbolKind.CLASS,
                                                              SymbolKind.EXCEPTION):
                return _class_of(called, instance=True)
        return None

    def _name(self, name: str) -> Ref | None:
        if name in self.local_types:
            return self.local_types[name]
        if name in self.local_names:
            return None
        m = self.module
        if name in m.defs:
            kind, line = m.defs[name]
            return Symbol(name, f"{m.name}.{name}", kind, m.file, line)
        if name in m.imports:
            found = resolve_ref(self.modules, m.imports[name])
            if isinstance(found, Symbol) and found.name != name:
                return Symbol(name, found.qualname, found.kind, found.file, found.line)
            return found
        return None


def _class_of(symbol: Symbol, instance: bool) -> ClassRef:
    module, name = symbol.qualname.rsplit(".", 1)
    return ClassRef(module, name, instance)


def _locals(func: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """Names the function binds itself (parameters, assignments, loop and ``with`` targets,
    nested definitions): they shadow the module's names. Imports are left out, they bind the
    project's names."""
    names: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            names.update(x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs])
            names.update(x.arg for x in (a.vararg, a.kwarg) if x is not None)
            if not isinstance(node, ast.Lambda) and node is not func:
                names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Global):
            names.difference_update(node.names)
    return frozenset(names)


def _local_types(func: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope,
                 owner: ClassRef | None) -> dict[str, ClassRef]:
    """Locals whose project class is known: ``self``/``cls`` (``owner``), parameters annotated
    with a class, locals assigned exactly once from ``Class(...)``."""
    out: dict[str, ClassRef] = {}
    args = [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in func.decorator_list)
    if owner is not None and args and not static:
        out[args[0].arg] = owner
    for a in args:
        if a.annotation is not None and a.arg not in out:
            ref = scope.ref(a.annotation)
            if isinstance(ref, Symbol) and ref.kind in (SymbolKind.CLASS, SymbolKind.EXCEPTION):
                out[a.arg] = _class_of(ref, instance=True)
    stores = Counter(n.id for n in ast.walk(func)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            ref = scope.ref(node.value) if stores[name] == 1 and name not in out else None
            if isinstance(ref, ClassRef) and ref.instance:
                out[name] = ref
    return out


@dataclass(frozen=True)
class Use:
    line: int  # 1-based
    col: int  # character column of the identifier
    symbol: Symbol


def functions(tree: ast.Module) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef,
                                                  str | None]]:
    """Top-level functions and the methods of top-level classes, with the class's name."""
    for node in _top_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, None
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield item, node.name


def cross_module_uses(modules: dict[str, Module], module: Module) -> list[Use]:
    """Every use, inside a function body of ``module``, of a symbol another project module
    defines; in source order."""
    lines = module.text.split("\n")
    uses: list[Use] = []
    for func, cls in functions(module.tree):
        base = _Scope(modules, module, _locals(func))
        owner = ClassRef(module.name, cls, True, skip_own=True) if cls else None
        scope = _Scope(modules, module, base.local_names, _local_types(func, base, owner))
        for stmt in func.body:
            for node in ast.walk(stmt):
                use = _use_of(node, scope, module, lines)
                if use is not None:
                    uses.append(use)
    return sorted(set(uses), key=lambda u: (u.line, u.col, u.symbol.qualname))


def _use_of(node: ast.AST, scope: _Scope, module: Module, lines: list[str]) -> Use | None:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        ident, row, byte_col = node.id, node.lineno, node.col_offset
    elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and \
            node.end_lineno is not None and node.end_col_offset is not None:
        ident, row = node.attr, node.end_lineno
        byte_col = node.end_col_offset - len(node.attr.encode("utf-8"))
    else:
        return None
    ref = scope.ref(node)  # type: ignore[arg-type]
    if not isinstance(ref, Symbol) or ref.module == module.name:
        return None
    line = lines[row - 1]
    col = len(line.encode("utf-8")[:byte_col].decode("utf-8", "replace"))
    if line[col:col + len(ident)] != ident:
        return None  # a position ast reports differently (old f-string positions)
    return Use(row, col, ref)


# --- holes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoTask:
    """A line hole in a project module; the document is the module without the line's rest."""

    task_id: str  # <project>/<file>:<line>
    project: str  # Project.key
    version: str
    root: str  # the unpacked tree (absolute), never written
    file: str  # relative to root
    module: str  # dotted
    offset: int  # code-point offset of the cursor in the original file
    line: int  # 0-based, LSP
    character: int  # UTF-16 column, LSP
    reference: str  # the rest of the line from the cursor, without a trailing comment
    symbols: tuple[Symbol, ...]  # cross-module symbols on the rest of the line, the cursor's first
    test_files: tuple[str, ...] = ()  # relative to root; empty: no tests reach the module

    def hole_text(self, original: str) -> str:
        """The document as the server gets it: the line cut at the cursor."""
        end = original.find("\n", self.offset)
        return original[:self.offset] + (original[end:] if end >= 0 else "")

    def filled(self, original: str, text: str, cut: int = 0) -> str:
        """The module with ``text`` typed at the cursor (``cut`` characters before it
        replaced: the line's whitespace, by an item whose range starts earlier)."""
        hole = self.hole_text(original)
        return hole[:self.offset - cut] + text + hole[self.offset:]

    def line_prefix(self, original: str) -> str:
        return original[original.rfind("\n", 0, self.offset) + 1:self.offset]

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "project": self.project, "version": self.version,
                "root": self.root, "file": self.file, "module": self.module,
                "offset": self.offset, "line": self.line, "character": self.character,
                "reference": self.reference, "symbols": [s.to_json() for s in self.symbols],
                "test_files": list(self.test_files)}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> RepoTask:
        return cls(row["task_id"], row["project"], row["version"], row["root"], row["file"],
                   row["module"], int(row["offset"]), int(row["line"]), int(row["character"]),
                   row["reference"], tuple(Symbol.from_json(s) for s in row["symbols"]),
                   tuple(row.get("test_files", ())))


def _statement_ends(text: str) -> tuple[set[int], dict[int, int]]:
    """Rows (1-based) whose line ends a statement (a NEWLINE token), and the column of each
    row's comment."""
    ends: set[int] = set()
    comments: dict[int, int] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NEWLINE:
                ends.add(tok.start[0])
            elif tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.start[1]
    except (tokenize.TokenError, SyntaxError):
        pass
    return ends, comments


def find_holes(project: Project, tree: Path, modules: dict[str, Module],
               tests: dict[str, tuple[str, ...]] | None = None) -> list[RepoTask]:
    """One hole per line that uses another module's symbol (all of them, unsampled), ordered by
    file and line. ``tests``: the test files reaching each module."""
    from server.lspclient import position_of

    out: list[RepoTask] = []
    for module in sorted(modules.values(), key=lambda m: m.file):
        by_line: dict[int, list[Use]] = {}
        for use in cross_module_uses(modules, module):
            by_line.setdefault(use.line, []).append(use)
        if not by_line:
            continue
        lines = module.text.split("\n")
        starts = [0]
        for ln in lines:
            starts.append(starts[-1] + len(ln) + 1)
        ends, comments = _statement_ends(module.text)
        for row, uses in sorted(by_line.items()):
            first = min(uses, key=lambda u: u.col)
            text = lines[row - 1]
            rest = text[first.col:comments.get(row, len(text))].rstrip()
            if row not in ends or len(rest.strip()) < MIN_REST:
                continue
            symbols = tuple(dict.fromkeys(u.symbol for u in sorted(uses, key=lambda u: u.col)
                                          if u.col >= first.col))
            offset = starts[row - 1] + first.col
            lsp_line, character = position_of(module.text, offset)
            out.append(RepoTask(f"{project.key}/{module.file}:{row}", project.key,
                                project.sdist.version, str(tree), module.file, module.name,
                                offset, lsp_line, character, rest, symbols,
                                (tests or {}).get(module.name, ())))
    return out


def sample(tasks: Sequence[RepoTask], per_file: int = PER_FILE, per_project: int = PER_PROJECT,
           seed: int = SAMPLE_SEED) -> list[RepoTask]:
    """At most ``per_file`` holes per module, then ``per_project`` per project, by a fixed
    seed; order kept (file, line)."""
    by_file: dict[tuple[str, str], list[RepoTask]] = {}
    for t in tasks:
        by_file.setdefault((t.project, t.file), []).append(t)
    kept: list[RepoTask] = []
    for (project, file), group in sorted(by_file.items()):
        rng = random.Random(f"{seed}/{project}/{file}")
        kept.extend(rng.sample(group, min(per_file, len(group))) if per_file else group)
    out: list[RepoTask] = []
    for project in sorted({t.project for t in kept}):
        group = [t for t in kept if t.project == project]
        rng = random.Random(f"{seed}/{project}")
        out.extend(rng.sample(group, min(per_project, len(group))) if per_project else group)
    keep = {t.task_id for t in out}
    return [t for t in tasks if t.task_id in keep]


def interleave(tasks: Sequence[RepoTask]) -> list[RepoTask]:
    """Round-robin over projects, so the first N tasks (``--limit``) cover every project."""
    groups: dict[str, list[RepoTask]] = {}
    for t in tasks:
        groups.setdefault(t.project, []).append(t)
    out: list[RepoTask] = []
    queues = [groups[k] for k in sorted(groups)]
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


# --- which tests reach a module ---------------------------------------------------------------


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _imported(tree: ast.Module, module: str, is_package: bool, package: str,
              known: set[str]) -> set[str]:
    """Project modules an import statement anywhere in ``tree`` executes (parents included)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            names = [source, *(f"{source}.{a.name}" for a in node.names)]
        for name in names:
            if name.split(".")[0] == package:
                out.update(p for p in _parents(name) if p in known)
    return out


def tests_reaching(project: Project, tree: Path, modules: dict[str, Module]
                   ) -> dict[str, tuple[str, ...]]:
    """Module → the test files (relative to the tree) whose imports reach it, directly or
    through other project modules, and those named after it."""
    if project.tests is None:
        return {}
    known = set(modules)
    graph = {m.name: _imported(m.tree, m.name, m.is_package, project.package, known)
             | set(_parents(m.name)[:-1]) for m in modules.values()}
    out: dict[str, list[str]] = {}
    for path in sorted((tree / project.tests).rglob("*.py")):
        if not (path.name.startswith("test_") or path.name.endswith("_test.py")):
            continue
        try:
            parsed = ast.parse(path.read_bytes())
        except SyntaxError:
            continue
        seen: set[str] = set()
        todo = list(_imported(parsed, "", False, project.package, known))
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
        # By convention test_<name>.py tests module <name>, also when the project loads the
        # module by a string (Markdown's extensions: ``extensions=["toc"]``).
        named = {m for m in known if m.rsplit(".", 1)[-1] == path.stem.removeprefix("test_")}
        for m in seen | named:
            out.setdefault(m, []).append(path.relative_to(tree).as_posix())
    return {m: tuple(sorted(files)) for m, files in out.items()}


# --- the suite --------------------------------------------------------------------------------


def build(keys: Sequence[str], cache: Path | None = None, per_file: int = PER_FILE,
          per_project: int = PER_PROJECT, seed: int = SAMPLE_SEED) -> list[RepoTask]:
    """The suite for the projects named: fetched if needed, holes found and sampled; the same
    tasks on every machine (up to ``root``)."""
    cache = cache or repos_dir()
    tasks: list[RepoTask] = []
    for key in keys:
        if key not in PROJECTS:
            raise RepoError(f"no project {key!r} (choose from {', '.join(PROJECTS)})")
        project = PROJECTS[key]
        tree = fetch(project.sdist, cache)
        for dep in project.test_requires:
            fetch(dep, cache)
        modules = load_modules(project, tree)
        holes = find_holes(project, tree, modules, tests_reaching(project, tree, modules))
        tasks.extend(sample(holes, per_file, per_project, seed))
    return interleave(tasks)


def write_tasks(tasks: Sequence[RepoTask], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(t.to_json()) + "\n" for t in tasks), encoding="utf-8")


def read_tasks(path: Path) -> list[RepoTask]:
    return [RepoTask.from_json(json.loads(line))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class RepoOptions:
    """How a ``repo`` run drives the server and checks suggestions."""

    open_docs: OpenDocs = OpenDocs.ALL
    tests: bool = True
    test_timeout_s: float = 120.0
    # Before each hole, the line defining its symbol is edited (and left as it was), as by a
    # user who just worked on that definition: what "recently edited" context is worth.
    edit_definition: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"open": self.open_docs.value, "tests": self.tests,
                "editDefinition": self.edit_definition}


# --- running a project's tests ----------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    passed: bool
    verdict: str  # testgen.sandbox.Verdict value, or "syntax_error"
    detail: str
    duration_s: float


# What the broken line names instead of the hole's symbol: a NameError wherever it runs.
BROKEN_NAME = "lspbench_undefined_symbol"


@dataclass(frozen=True)
class Baseline:
    original: RunOutcome  # the tests with the original line
    broken: RunOutcome  # with the hole's symbol replaced by an undefined name

    @property
    def usable(self) -> bool:
        """The tests pass with the original line and notice a broken one: only then does
        passing them say something about a suggestion."""
        return self.original.passed and not self.broken.passed


class ProjectTests:
    """Runs a hole's tests with a filling, in pingti's sandbox; the original line's outcome (the
    baseline) is cached in ``<cache>/baselines.json``. Safe to call from several threads."""

    def __init__(self, cache: Path, isolation: Isolation = Isolation.AUTO,
                 timeout_s: float = 120.0) -> None:
        self.cache = cache
        # The projects' own suites: tens of seconds of CPU at most, well under 2 GiB; pytest
        # and unittest start a few processes at most.
        self.limits = Limits(wall_s=timeout_s, cpu_s=max(1, int(timeout_s)),
                             memory_bytes=2 * 2**30, processes=64)
        self.sandbox = Sandbox(isolation, self.limits)
        self._lock = threading.Lock()
        self._baselines_file = cache / "baselines.json"
        self._baselines: dict[str, dict[str, Any]] = {}
        if self._baselines_file.exists():
            self._baselines = json.loads(self._baselines_file.read_text(encoding="utf-8"))

    def refusal(self) -> str | None:
        return None if self.sandbox.report.usable else self.sandbox.report.refusal()

    def baseline(self, task: RepoTask) -> Baseline:
        """The hole's tests with the original line and with a broken one (cached)."""
        key = _baseline_key(task)
        with self._lock:
            known = self._baselines.get(key)
        if known is not None:
            return Baseline(RunOutcome(**known["original"]), RunOutcome(**known["broken"]))
        original = (Path(task.root) / task.file).read_text(encoding="utf-8")
        broken = BROKEN_NAME + task.reference[len(task.symbols[0].name):]
        result = Baseline(self.run(task, original), self.run(task, task.filled(original, broken)))
        with self._lock:
            self._baselines[key] = {"original": asdict(result.original),
                                    "broken": asdict(result.broken)}
            self.cache.mkdir(parents=True, exist_ok=True)
            tmp = self._baselines_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._baselines, indent=0, sort_keys=True),
                           encoding="utf-8")
            tmp.replace(self._baselines_file)
        return result

    def run(self, task: RepoTask, module_text: str) -> RunOutcome:
        """The hole's tests with the module's text replaced by ``module_text``."""
        project = PROJECTS[task.project]
        try:
            ast.parse(module_text)
        except (SyntaxError, ValueError):
            return RunOutcome(False, "syntax_error", "", 0.0)
        workdir = self.sandbox.make_workdir()
        try:
            shutil.copytree(task.root, workdir, dirs_exist_ok=True)
            (workdir / task.file).write_text(module_text, encoding="utf-8")
            if os.geteuid() == 0:  # the sandbox runs as nobody: let the tests write their dir
                for path in [workdir, *workdir.rglob("*")]:
                    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
            deps = [fetch(d, self.cache) for d in project.test_requires]
            search = [str(workdir / project.source_root), *map(str, deps)]
            env = {"PYTHONPATH": os.pathsep.join(search),
                   # Only the runner: pingti's own pytest plugins stay out of the projects' runs.
                   "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
            res = self.sandbox.run(runner_command(project, task.test_files), workdir, env=env,
                                   readonly=deps)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-3:])
        detail = res.detail if res.verdict in (Verdict.REFUSED, Verdict.ERROR) else tail
        return RunOutcome(res.verdict is Verdict.OK, res.verdict.value, detail[-500:],
                       round(res.duration_s, 3))


def runner_command(project: Project, files: Sequence[str]) -> list[str]:
    if project.runner is Runner.UNITTEST:
        dotted = [f.removesuffix(".py").replace("/", ".") for f in files]
        return ["python", "-m", "unittest", "-f", "-q", *project.runner_args, *dotted]
    return ["python", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
            *project.runner_args, *files]


def _baseline_key(task: RepoTask) -> str:
    """The baseline depends on the task, the tree and the interpreter and pytest it ran with."""
    import pytest

    facts = [task.to_json() | {"root": None}, sys.version, pytest.__version__]
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
