"""The languages pingti knows, declared once.

Everything that maps a document to a language reads this table: the LSP language ids a client
may send (dialects such as ``typescriptreact`` included), the file extensions used when a client
sends no id, and the line-comment marker the cursor context strips. The syntax constraint's
languages (``constraintLanguages``) are these names; ``grammar_constraints.languages`` maps them
to their lexers and parsers. Languages outside this table still get completions, only without a
syntax constraint.

This module imports nothing heavy: the config, the editors' settings schema and
``grammar_constraints`` all read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Language(enum.Enum):
    PYTHON = "python"
    JAVASCRIPT = "javascript"
    TYPESCRIPT = "typescript"
    GO = "go"
    RUST = "rust"
    JAVA = "java"
    C = "c"
    CPP = "cpp"


@dataclass(frozen=True)
class LanguageSpec:
    lsp_ids: tuple[str, ...]  # the first is the language's own id
    extensions: tuple[str, ...]
    line_comment: str


LANGUAGES: dict[Language, LanguageSpec] = {
    Language.PYTHON: LanguageSpec(("python",), (".py", ".pyi"), "#"),
    Language.JAVASCRIPT: LanguageSpec(("javascript", "javascriptreact"),
                                      (".js", ".jsx", ".mjs", ".cjs"), "//"),
    Language.TYPESCRIPT: LanguageSpec(("typescript", "typescriptreact"),
                                      (".ts", ".tsx", ".mts", ".cts"), "//"),
    Language.GO: LanguageSpec(("go",), (".go",), "//"),
    Language.RUST: LanguageSpec(("rust",), (".rs",), "//"),
    Language.JAVA: LanguageSpec(("java",), (".java",), "//"),
    Language.C: LanguageSpec(("c",), (".c", ".h"), "//"),
    Language.CPP: LanguageSpec(("cpp",), (".cpp", ".cc", ".cxx", ".hpp", ".hh", ".hxx"), "//"),
}

# LSP language id → language, every dialect included.
LSP_IDS: dict[str, Language] = {i: lang for lang, spec in LANGUAGES.items() for i in spec.lsp_ids}
# Other languages' comment markers, for the cursor context of documents outside the table.
_HASH_COMMENT_IDS = frozenset({"shellscript", "ruby", "r", "yaml", "perl", "toml", "makefile"})


def from_lsp_id(language_id: str | None) -> Language | None:
    return LSP_IDS.get((language_id or "").strip().lower())


def from_uri(uri: str) -> Language | None:
    """The language of a document by its file extension (for clients that send no id)."""
    path = uri.split("?", 1)[0].split("#", 1)[0].lower()
    for lang, spec in LANGUAGES.items():
        if path.endswith(spec.extensions):
            return lang
    return None


def language_id_of(language_id: str | None, uri: str) -> str:
    """The id the completion path works with: the client's (lower case), else the one of the
    file's extension, else ''."""
    if language_id and language_id.strip():
        return language_id.strip().lower()
    lang = from_uri(uri)
    return lang.value if lang else ""


def line_comment(language_id: str) -> str:
    lang = from_lsp_id(language_id)
    if lang is not None:
        return LANGUAGES[lang].line_comment
    return "#" if language_id in _HASH_COMMENT_IDS else "//"
