"""Soundness of the C-family syntax constraint on real files it was not developed on.

    .venv/bin/python benchmarks/constraint_heldout.py --out benchmarks/out/constraint_heldout.json

The test corpus (``tests/data/grammar_corpus``) is the one the continuation search was tuned
against, so its zero is not a fair estimate. This benchmark teacher-forces other real files
found on the machine, the way the soundness test does (default tokenizer, a fresh cursor every
8 lines, each file up to 6000 characters): the JDK's sources (``src.zip``), the C library and
libstdc++ headers, the VS Code extension's installed npm packages (run ``editors/vscode``'s
``npm ci`` first), Go files shipped with git's docs, Rust files shipped with the toolchain. A
language with no files found is reported as such. Files are picked in a seeded random order,
skipping minified and tiny ones; a file tree-sitter itself cannot parse is skipped (it is not a
valid program for the oracle), and so is one with no declaration ending in its first 6,000
characters.
"""

from __future__ import annotations

import argparse
import glob
import random
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402
from grammar_constraints.factory import ConstraintFactory  # noqa: E402
from grammar_constraints.languages import syntax_for  # noqa: E402
from grammar_constraints.teacher import Forced, cut_whole, teacher_force_chunks  # noqa: E402
from grammar_constraints.ts_oracle import parses  # noqa: E402
from server.backends.loader import load_backend  # noqa: E402
from server.config import Config, force_offline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "editors" / "vscode" / "node_modules"


def _files(patterns: list[str]) -> list[tuple[str, str]]:
    out = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                out.append((path, Path(path).read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                continue
    return out


def _jdk(package_dir: str) -> list[tuple[str, str]]:
    zips = sorted(p for p in glob.glob("/usr/lib/jvm/*/lib/src.zip") if Path(p).is_file())
    if not zips:
        return []
    with zipfile.ZipFile(zips[0]) as z:
        return [(f"{zips[0]}!{n}", z.read(n).decode("utf-8", "replace")) for n in z.namelist()
                if n.startswith(package_dir) and n.endswith(".java") and n.count("/") == 3]


SOURCES = {
    "javascript": lambda: _files([f"{NODE}/**/*.js"]),
    "typescript": lambda: _files([f"{NODE}/**/*.ts"]),
    "java": lambda: _jdk("java.base/java/util/"),
    "c": lambda: _files(["/usr/include/*.h"]),
    "cpp": lambda: _files(["/usr/include/c++/*/bits/*.h"]),
    "go": lambda: _files(["/usr/share/doc/**/*.go", "/usr/lib/go*/src/*/*.go"]),
    "rust": lambda: _files([str(Path.home() / ".rustup/toolchains/*/share/doc/rust/**/*.rs"),
                            str(Path.home() / ".cargo/registry/src/*/*/src/*.rs")]),
}


def usable(source: str) -> bool:
    lines = source.splitlines()
    return len(lines) >= 30 and max(map(len, lines)) <= 300  # not minified, not tiny


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=8, help="files per language (at most)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--languages", nargs="*", default=list(SOURCES))
    ap.add_argument("--out", default="benchmarks/out/constraint_heldout.json")
    args = ap.parse_args()
    force_offline()
    backend = load_backend(Config())
    table = ConstraintFactory(backend.decode, backend.vocab_size, backend.decoder.stop_ids).table
    report: dict[str, object] = {"files_per_language": args.files, "seed": args.seed}
    for language in args.languages:
        syntax = syntax_for(language)
        assert syntax is not None
        grammar = getattr(getattr(syntax, "oracle", None), "grammar", language)
        candidates = [(p, s) for p, s in SOURCES[language]() if usable(s)]
        random.Random(args.seed).shuffle(candidates)
        found, used, skipped = Forced(), list[str](), 0
        t0 = time.perf_counter()
        for path, source in candidates:
            if len(used) >= args.files:
                break
            text = cut_whole(syntax, source)
            if len(text.splitlines()) < 10 or not parses(grammar, text):
                # tree-sitter rejects the file itself, or no declaration ends in its first
                # 6,000 characters (a long header, then one namespace): nothing to feed
                skipped += 1
                continue
            used.append(path)
            found.add(teacher_force_chunks(backend.encode, backend.decode, table, syntax, text),
                      f"{Path(path.split('!')[-1]).name}: ")
        rate = len(found.refused) / found.fed if found.fed else 0.0
        report[language] = {"files": used, "skipped_unparsable": skipped,
                            "tokens": found.fed, "refused": len(found.refused),
                            "refusal_rate": rate, "cursors_aside": found.aside,
                            "chunks": found.chunks, "examples": found.refused[:20],
                            "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{language:10} files {len(used):2} (skipped {skipped}) tokens {found.fed:6} "
              f"refused {len(found.refused):3} ({rate:.3%}) aside {found.aside}/{found.chunks}",
              flush=True)
        for example in found.refused[:5]:
            print(f"    {example}")
    backend.close()
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
