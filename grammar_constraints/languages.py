"""The languages the syntax constraint knows, behind one small interface.

Python has its own lexer (with the vectorised vocabulary mask) and an exact oracle on CPython's
parser; the C-family languages share a configurable lexer and the tree-sitter oracle
(:mod:`grammar_constraints.ts_oracle`) on the official grammar wheels, and the strict ones (Go,
Rust, Java, C, C++) a vectorised mask of the tokens whose closing brackets match nothing open.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import numpy as np

from grammar_constraints import python_lexer, python_oracle
from grammar_constraints.clike_lexer import CODE
from grammar_constraints.ts_oracle import TreeSitterOracle, utf8
from grammar_constraints.vocab import TokenTable
from server.languages import LSP_IDS, Language

# The languages are declared once, in server.languages: every one there has a syntax constraint
# (Python, or a dialect of the C-family lexer; a test checks), under its own name.
SUPPORTED: tuple[str, ...] = tuple(lang.value for lang in Language)
# LSP language ids (dialects included) → the constraint's language names.
LANGUAGE_IDS: dict[str, str] = {lsp_id: lang.value for lsp_id, lang in LSP_IDS.items()}


class Syntax(Protocol):
    """What the cursor and the end-of-generation check need from a language."""

    name: str

    def start(self) -> Any: ...

    def fill_mask(self, table: TokenTable, logits: np.ndarray, state: Any) -> None:
        """The vectorised lexical layer: set the logits of tokens that cannot follow
        ``state`` to -inf (over the whole vocabulary)."""
        ...

    def feed(self, state: Any, text: str) -> Any | None: ...

    def anchor(self, prefix: str) -> int: ...

    def skeleton(self, base: str) -> str:
        """``base`` (from ``anchor``) shortened so that every continuation is viable after it
        exactly when it is after ``base`` (``base`` itself always qualifies)."""
        ...

    def viable(self, text: str, state: Any) -> bool: ...

    def still_viable(self, text: str, state: Any, before: str, before_state: Any) -> bool:
        """Is ``text`` viable, given that ``before`` (a prefix of it) was?"""
        ...

    def error_count(self, text: str) -> int: ...

    def statement_end(self, line: str) -> bool:
        """Does this suffix line (at column 0) start the next top-level statement?"""
        ...


class PythonSyntax:
    name = "python"

    def start(self) -> python_lexer.LexState:
        return python_lexer.LexState()

    def fill_mask(self, table: TokenTable, logits: np.ndarray,
                  state: python_lexer.LexState) -> None:
        table.mask(logits, state.mode, state.stack, state.run)

    def feed(self, state: python_lexer.LexState, text: str) -> python_lexer.LexState | None:
        return python_lexer.feed(state, text)

    def anchor(self, prefix: str) -> int:
        return python_oracle.anchor(prefix)

    def skeleton(self, base: str) -> str:
        return python_oracle.skeleton(base)

    def viable(self, text: str, state: python_lexer.LexState) -> bool:
        return python_oracle.viable(text, state)

    def still_viable(self, text: str, state: python_lexer.LexState, before: str,
                     before_state: python_lexer.LexState) -> bool:
        return python_oracle.viable(text, state)

    def error_count(self, text: str) -> int:
        from grammar_constraints.finish import error_count

        return error_count(text, "python")

    def statement_end(self, line: str) -> bool:
        return not _PY_CONTINUATION.match(line)


_PY_CONTINUATION = re.compile(r"(else|elif|except|finally)\b|[)\]}#]")
_C_CONTINUATION = re.compile(r"(else|catch|finally|while)\b|[)\]}#/*.,:?&|+\-=<>]")


class ClikeSyntax:
    """A C-family language on tree-sitter. Its check is relative to the text before the token.
    The oracle's continuations do not cover every construct, so when they find none:

    * if they found one before this token, the token is refused (it broke the text);
    * if they found none before either (a construct they do not know is being written), the
      token is refused only if the text's first parse error moved earlier with it.
    """

    def __init__(self, name: str, grammar: str | None = None) -> None:
        self.name = name
        self.oracle = TreeSitterOracle(name, grammar)
        self._verdicts: dict[str, bool | None] = {}  # recent texts → the oracle's answer
        self._witnesses: dict[str, str] = {}  # recent texts → a continuation that parsed
        self._never: tuple[str, ...] = _NEVER.get(name, ())
        self._reserved_words = _RESERVED.get(name, frozenset())
        self._reserved = re.compile(
            r"\b(" + "|".join(sorted(self._reserved_words)) + r")\b") \
            if self._reserved_words else None

    def _viable(self, text: str, state: Any) -> bool | None:
        if text not in self._verdicts:
            if len(self._verdicts) > 64:
                self._verdicts.clear()
                self._witnesses.clear()
            self._verdicts[text] = verdict = self.oracle.viable(text, state)
            witness = self.oracle.witness
            if verdict and witness is not None and witness[0] == text:
                self._witnesses[text] = witness[1]
        return self._verdicts[text]

    def start(self) -> Any:
        return self.oracle.start()

    def fill_mask(self, table: TokenTable, logits: np.ndarray, state: Any) -> None:
        # Only the strict dialects (Go, Rust, Java, C, C++), whose lexer refuses a closer that
        # matches no opener anyway: in JavaScript/TypeScript, JSX text may hold any bracket.
        if self.oracle.dialect.strict and state.mode == CODE:
            table.mask_closers(logits, state.stack)

    def feed(self, state: Any, text: str) -> Any | None:
        return self.oracle.feed(state, text)

    def anchor(self, prefix: str) -> int:
        return self.oracle.anchor(prefix)

    def skeleton(self, base: str) -> str:
        return base  # the tree-sitter oracle's verdicts are cached per text; not measured slow

    def _aside(self, text: str) -> bool:
        """Constructs the continuation search cannot complete, where it would refuse good
        tokens: JSX elements, Rust ``macro_rules!`` patterns. The constraint steps aside in
        statements that hold one."""
        if self.name == "javascript" or self.oracle.grammar == "tsx":
            return _JSX.search(text) is not None
        return self.name == "rust" and "macro_rules!" in text

    def viable(self, text: str, state: Any) -> bool:
        if self._aside(text):
            return False
        return self._viable(text, state) is not False  # out of time: do not know

    def still_viable(self, text: str, state: Any, before: str, before_state: Any) -> bool:
        if self._aside(text):
            return True
        if self._never and self._never_valid(text, before, before_state):
            return False
        if self._viable(text, state) is not False:
            # tree-sitter takes a reserved word for a name where only a name fits
            # (``return return x``): refuse a token that completes one.
            return not self._reserved_name(text, state, len(utf8(before)))
        return self._relative(text, state, before, before_state)

    def _never_valid(self, text: str, before: str, before_state: Any) -> bool:
        """Does the token (``text`` after ``before``) complete, in code, a sequence that no
        program holds (``_NEVER``)? The lexer walks the token to know what is code."""
        new = text[len(before):]
        if not any(seq[-1] in new for seq in self._never):
            return False
        st = before_state
        for i, ch in enumerate(new):
            if st is None:
                return False
            if st.mode == CODE:
                if ch == "," and "(," in self._never and st.last == "(":
                    return True
                at = len(before) + i
                if ch == ":" and ":::" in self._never and text[at - 2:at] == "::":
                    return True
            st = self.feed(st, ch)
        return False

    def _reserved_name(self, text: str, state: Any, since: int) -> bool:
        if self._reserved is None or not self._reserved.search(text, max(0, len(text) - 64)):
            return False
        # The continuation that parsed shows how tree-sitter reads the text; a plain closing
        # may be an error that it recovers from by taking a keyword for a name.
        probe = self._witnesses.get(text) or text + self.oracle.plain_close(text, state)
        root = self.oracle.tree(probe).root_node
        end = len(utf8(text))
        node = root.descendant_for_byte_range(max(0, since - 16), end)
        stack = [node] if node is not None else []
        while stack:
            n = stack.pop()
            if n.end_byte < since - 16 or n.start_byte >= end:
                continue
            if n.type in ("identifier", "type_identifier") and n.end_byte < end and \
                    n.text.decode("utf-8", "replace") in self._reserved_words and \
                    (n.parent is None or n.parent.type not in _NAME_OK_IN):
                return True
            stack.extend(n.children)
        return False

    def _relative(self, text: str, state: Any, before: str, before_state: Any) -> bool:
        if self._viable(before, before_state) is not False:
            return False
        return self.oracle.first_error(text, state) >= self.oracle.first_error(
            before, before_state)

    def error_count(self, text: str) -> int:
        """Errors in ``text`` with what it leaves open closed plainly (the suffix window may
        end before the closing brace: an unclosed block is not this completion's error)."""
        from grammar_constraints.finish import error_count

        state = self.feed(self.start(), text)
        if state is not None:
            text = text + self.oracle.plain_close(text, state)
        return error_count(text, self.oracle.grammar)

    def statement_end(self, line: str) -> bool:
        return not _C_CONTINUATION.match(line)


_PYTHON = PythonSyntax()
_JS_RESERVED = frozenset(
    "break case catch class const continue debugger delete do else export extends finally for "
    "function if import in instanceof new return switch throw try typeof var void while with"
    .split())
_C_RESERVED = frozenset(
    "break case char const continue do double else enum extern float for goto if int long "
    "register return short signed sizeof static struct switch typedef union unsigned void "
    "volatile while".split())
# Where tree-sitter rightly shows a reserved word as an identifier: Rust's 'static, a type as
# a C/C++ macro argument (va_arg(ap, int)).
_NAME_OK_IN = frozenset({"lifetime", "argument_list"})
# Words that are never a name (contextual keywords left out: they may be names).
_RESERVED = {
    "javascript": _JS_RESERVED,
    "typescript": _JS_RESERVED,
    "go": frozenset("break case chan const continue defer else fallthrough for func go goto if "
                    "import interface map package range return select struct switch var"
                    .split()),
    "rust": frozenset("as break const continue else enum extern fn for if impl in let loop "
                      "match mod move mut pub ref return static struct trait unsafe use where "
                      "while".split()),
    "java": frozenset("abstract assert boolean break byte case catch char class continue do "
                      "double else enum extends final finally float for if implements import "
                      "instanceof int interface long native new package private protected "
                      "public return short static strictfp switch synchronized throw throws "
                      "transient try void volatile while".split()),
    "c": _C_RESERVED,
    "cpp": _C_RESERVED | frozenset("catch class delete friend namespace new operator private "
                                   "protected public template throw try typename using virtual"
                                   .split()),
}
# Token sequences no program of the language holds, though tree-sitter's grammar (lenient, or
# recovering without an ERROR node) takes them: a token that completes one in code is refused.
# "(,": an argument or parameter list, or a parenthesised expression, never starts with a comma
# (not C/C++, where a macro's argument may be empty, nor Rust, whose macros take any tokens).
# ":::": by maximal munch ``::`` then ``:``, which C++ never allows.
_NEVER = {"javascript": ("(,",), "typescript": ("(,",), "java": ("(,",), "go": ("(,",),
          "cpp": (":::",)}
# An element's start where an expression starts, a closing tag, a fragment.
_JSX = re.compile(r"(?:^|[=(,?:&|{}\[]|\breturn)\s*<[A-Za-z]|</[A-Za-z>]|/>|<>")


def syntax_for(language_id: str) -> Syntax | None:
    """The syntax of an LSP language id (``typescriptreact`` parses as TSX), or None."""
    name = LANGUAGE_IDS.get(language_id)
    if name is None:
        return None
    if name == "python":
        return _PYTHON
    return ClikeSyntax(name, "tsx" if language_id == "typescriptreact" else None)
