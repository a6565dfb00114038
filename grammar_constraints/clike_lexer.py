"""The lexical state of C-family code (JavaScript, TypeScript, Go, Rust, Java, C, C++), fed text
incrementally: comments, strings, template literals, regular expressions, raw strings, brackets.

The state is what the tree-sitter oracle needs to close the text lexically (end an open string
or comment, close the open brackets) before it parses it, and what ``anchor`` needs to know it
is outside of every construct. ``feed`` returns None only for what no program can contain: a
closer that does not match (not in JavaScript/TypeScript, where JSX text may hold any bracket)
and a line break inside a one-line string or character literal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

# Modes.
CODE = 0
LINE_COMMENT = 1
BLOCK_COMMENT = 2  # aux: nesting depth (Rust nests block comments)
BLOCK_STAR = 3  # in a block comment, just read '*'
BLOCK_SLASH = 4  # in a block comment, just read '/' (Rust: '/*' nests)
STRING = 5  # aux: the quote's code point
STRING_ESC = 6
TEMPLATE = 7  # JavaScript `...`
TEMPLATE_ESC = 8
TEMPLATE_DOLLAR = 9  # in a template, just read '$'
RAW = 10  # Go `...`, Rust r#"..."#: aux = number of '#'
RAW_CLOSE = 11  # Rust: read '"' and run = '#'s since
RAW_OPEN = 12  # Rust: read r#, run = '#'s so far
SLASH = 13  # code just read '/': comment, regex or division; aux = 1 if a regex may start
REGEX = 14
REGEX_CLASS = 15
REGEX_ESC = 16  # aux = the mode to return to
CHAR_QUOTE = 17  # Rust: read "'": a character literal or a lifetime
CHAR_ONE = 18  # Rust: read "'x" (x a word character)
TEXT_BLOCK = 19  # Java """..."""; run = quotes just read
TEXT_BLOCK_ESC = 20
QUOTE2 = 21  # Java: read "" : an empty string, or the start of a text block
CPP_RAW_DELIM = 22  # C++: read R" ; word = the delimiter read so far, up to '('
CPP_RAW = 23  # C++: in R"delim( ... )delim" ; word = delim, run = chars of ')delim"' matched

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}
TEMPLATE_OPEN = "$"  # on the bracket stack: inside ${ ... } of a template literal
# On the bracket stack: the block of a ``do`` loop, which its ``while (...)`` must follow, and
# the block of a ``try``, which a handler must follow.
DO_OPEN = "d"
TRY_OPEN = "t"

# After these words a '/' starts a regular expression, not a division (JavaScript).
_REGEX_KEYWORDS = frozenset({"return", "typeof", "case", "do", "else", "in", "of", "new",
                             "delete", "void", "throw", "instanceof", "yield", "await"})
_WORD_MAX = 12


@dataclass(frozen=True)
class Dialect:
    """What a language's lexer knows."""

    name: str
    char_literals: bool = True  # '...' is a (one-line) character literal / string
    single_quote_strings: bool = False  # JavaScript: '...' is a string like "..."
    templates: bool = False  # JavaScript `...${}...`
    backtick_raw: bool = False  # Go `...`
    rust: bool = False  # raw strings r#"..."#, lifetimes 'a, nested block comments
    regex: bool = False  # JavaScript /.../
    text_blocks: bool = False  # Java """..."""
    digit_separators: bool = False  # C++14 1'000'000
    # A closer that does not match, a line break in a one-line string: errors. Not in
    # JavaScript/TypeScript, where JSX text (``<p>Don't (</p>``) may hold anything.
    strict: bool = True
    multiline_strings: bool = False  # Rust: "..." may span lines
    cpp_raw: bool = False  # C++ R"delim(...)delim"
    do_while: bool = True  # do { ... } while (...);
    try_close: str = ""  # what closes a try block: its closer and a handler


DIALECTS = {
    "javascript": Dialect("javascript", char_literals=False, single_quote_strings=True,
                          templates=True, regex=True, strict=False, try_close="} finally {}"),
    "typescript": Dialect("typescript", char_literals=False, single_quote_strings=True,
                          templates=True, regex=True, strict=False, try_close="} finally {}"),
    "go": Dialect("go", backtick_raw=True, do_while=False),
    "rust": Dialect("rust", char_literals=False, rust=True, multiline_strings=True,
                    do_while=False),
    "java": Dialect("java", text_blocks=True, try_close="} finally {}"),
    "c": Dialect("c"),
    "cpp": Dialect("cpp", digit_separators=True, cpp_raw=True, try_close="} catch (...) {}"),
}


class CState(NamedTuple):
    mode: int = CODE
    stack: str = ""  # open brackets (and template substitutions), innermost last
    aux: int = 0
    run: int = 0
    word: str = ""  # the identifier or number just read in code (regex, raw strings, 1'000)
    last: str = ""  # the last significant character in code


def _code(d: Dialect, st: CState, ch: str) -> CState | None:
    _, stack, _, _, word, last = st
    if ch.isalnum() or ch == "_":
        return CState(CODE, stack, 0, 0, _next_word(st, ch), "\0w")
    if ch in " \t\r\n\f\v":
        return CState(CODE, stack, 0, 0, word, last if last != "\0w" else "\0W")
    word_before = word if last in ("\0w", "\0W") else ""
    new_last = ch
    if ch == '"':
        if d.rust and word_before in ("r", "br", "cr") and last == "\0w":
            return CState(RAW, stack, 0, 0, "", "\0s")
        if d.cpp_raw and word_before in ("R", "LR", "uR", "UR", "u8R") and last == "\0w":
            return CState(CPP_RAW_DELIM, stack, 0, 0, "", "\0s")
        if d.text_blocks:
            return CState(STRING, stack, ord('"'), 0, "", "\0s")._replace(mode=QUOTE2, run=1)
        return CState(STRING, stack, ord('"'), 0, "", "\0s")
    if ch == "'":
        if d.digit_separators and last == "\0w" and word_before[:1].isdigit():
            return CState(CODE, stack, 0, 0, word, last)  # 1'000
        if d.rust:
            return CState(CHAR_QUOTE, stack, 0, 0, "", "\0s")
        if d.char_literals or d.single_quote_strings:
            return CState(STRING, stack, ord("'"), 0, "", "\0s")
        return CState(CODE, stack, 0, 0, "", ch)
    if ch == "`":
        if d.templates:
            return CState(TEMPLATE, stack, 0, 0, "", "\0s")
        if d.backtick_raw:
            return CState(RAW, stack, ord("`"), 0, "", "\0s")
        return CState(CODE, stack, 0, 0, "", ch)
    if ch == "#" and d.rust and word_before in ("r", "br", "cr") and last == "\0w":
        return CState(RAW_OPEN, stack, 0, 1, "", "\0s")
    if ch == "/":
        regex_ok = d.regex and _regex_may_start(last, word_before)
        return CState(SLASH, stack, int(regex_ok), 0, "", last)
    if ch in "+-" and last == ch:
        new_last = "\0p"  # a postfix ++/--: an operand ends here (a '/' after it divides)
    if ch in OPENERS:
        if ch == "{" and d.do_while and word_before == "do":
            ch = DO_OPEN
        elif ch == "{" and d.try_close and word_before == "try":
            ch = TRY_OPEN
        return CState(CODE, stack + ch, 0, 0, "", new_last)
    if ch in CLOSERS:
        if stack and stack[-1] == TEMPLATE_OPEN and ch == "}":
            return CState(TEMPLATE, stack[:-1], 0, 0, "", "\0s")
        if not stack or stack[-1] != CLOSERS[ch] and not (stack[-1] in _BLOCKS and ch == "}"):
            if d.strict:
                return None
            return CState(CODE, stack, 0, 0, "", new_last)  # JSX text: leave the stack alone
        return CState(CODE, stack[:-1], 0, 0, "", new_last)
    return CState(CODE, stack, 0, 0, "", new_last)


def _next_word(st: CState, ch: str) -> str:
    # The current word continues only if the last character read was a word character.
    if st.last == "\0w":
        return (st.word + ch)[-_WORD_MAX:]
    return ch


def _regex_may_start(last: str, word: str) -> bool:
    if last == "\0w" or last == "\0W":
        return word in _REGEX_KEYWORDS
    if last in ("\0s", "\0p"):  # after a string or template, a postfix ++/--
        return False
    return last == "" or last not in ")]}"


def feed(d: Dialect, state: CState, text: str) -> CState | None:
    st: CState | None = state
    for ch in text:
        assert st is not None
        st = _step(d, st, ch)
        if st is None:
            return None
    return st


def _step(d: Dialect, st: CState, ch: str) -> CState | None:
    if st.mode == CODE:
        return _code(d, st, ch)
    return _STEPS[st.mode](d, st, ch)


def _comment(d: Dialect, st: CState, ch: str) -> CState | None:
    """In a line or block comment (Rust's block comments nest: ``aux`` is the depth)."""
    mode = st.mode
    if mode == LINE_COMMENT:
        if ch == "\n" or ch == "\r":
            return st._replace(mode=CODE)
        return st
    if mode == BLOCK_COMMENT:
        if ch == "*":
            return st._replace(mode=BLOCK_STAR)
        if ch == "/" and d.rust:
            return st._replace(mode=BLOCK_SLASH)
        return st
    if mode == BLOCK_STAR:
        if ch == "/":
            if st.aux > 0:
                return st._replace(mode=BLOCK_COMMENT, aux=st.aux - 1)
            return st._replace(mode=CODE, aux=0)
        return st._replace(mode=BLOCK_STAR if ch == "*" else BLOCK_COMMENT)
    # BLOCK_SLASH
    if ch == "*":
        return st._replace(mode=BLOCK_COMMENT, aux=st.aux + 1)
    return st._replace(mode=BLOCK_SLASH if ch == "/" else BLOCK_COMMENT)


def _quoted(d: Dialect, st: CState, ch: str) -> CState | None:
    """In a string or character literal, or a Java text block (or the ``""`` that may open
    one)."""
    mode = st.mode
    if mode == STRING:
        if ch == "\\":
            return st._replace(mode=STRING_ESC)
        if ord(ch) == st.aux:
            return st._replace(mode=CODE, aux=0, last="\0s")
        if (ch == "\n" or ch == "\r") and not (d.multiline_strings and st.aux == ord('"')):
            # A string or character literal never spans lines unescaped (JSX text: an
            # apostrophe, not a string).
            return None if d.strict else CState(CODE, st.stack, 0, 0, "", "")
        return st
    if mode == STRING_ESC:
        if ch == "\r":
            return st  # \ + \r\n
        return st._replace(mode=STRING)
    if mode == QUOTE2:  # Java: read "" so far (run = 1 after the first)
        if ch == '"':
            if st.run == 1:
                return st._replace(run=2)
            return CState(TEXT_BLOCK, st.stack, 0, 0, "", "\0s")  # """
        if st.run == 1:  # an ordinary string: the quote just read opened it
            return _step(d, st._replace(mode=STRING, run=0), ch)
        return _code(d, CState(CODE, st.stack, 0, 0, "", "\0s"), ch)  # "" was empty
    if mode == TEXT_BLOCK:
        if ch == "\\":
            return st._replace(mode=TEXT_BLOCK_ESC, run=0)
        if ch == '"':
            if st.run == 2:
                return CState(CODE, st.stack, 0, 0, "", "\0s")
            return st._replace(run=st.run + 1)
        return st._replace(run=0)
    # TEXT_BLOCK_ESC
    return st._replace(mode=TEXT_BLOCK)


def _template(d: Dialect, st: CState, ch: str) -> CState | None:
    """In a JavaScript template literal (``${`` opens a substitution: code again)."""
    mode = st.mode
    if mode == TEMPLATE_ESC:
        return st._replace(mode=TEMPLATE)
    if mode == TEMPLATE_DOLLAR and ch == "{":
        return CState(CODE, st.stack + TEMPLATE_OPEN, 0, 0, "", "{")
    if ch == "\\":
        return st._replace(mode=TEMPLATE_ESC)
    if ch == "`":
        return CState(CODE, st.stack, 0, 0, "", "\0s")
    return st._replace(mode=TEMPLATE_DOLLAR if ch == "$" else TEMPLATE)


def _raw(d: Dialect, st: CState, ch: str) -> CState | None:
    """In a raw string: Go's `` `...` ``, Rust's ``r#"..."#`` (and its opening), C++'s
    ``R"delim(...)delim"``."""
    mode = st.mode
    if mode == RAW:
        if st.aux == ord("`"):  # Go
            return CState(CODE, st.stack, 0, 0, "", "\0s") if ch == "`" else st
        if ch == '"':
            if st.aux == 0:
                return CState(CODE, st.stack, 0, 0, "", "\0s")
            return st._replace(mode=RAW_CLOSE, run=0)
        return st
    if mode == RAW_CLOSE:
        if ch == "#":
            if st.run + 1 == st.aux:
                return CState(CODE, st.stack, 0, 0, "", "\0s")
            return st._replace(run=st.run + 1)
        return st._replace(mode=RAW_CLOSE if ch == '"' else RAW, run=0)
    if mode == RAW_OPEN:
        if ch == "#":
            return st._replace(run=st.run + 1)
        if ch == '"':
            return CState(RAW, st.stack, st.run, 0, "", "\0s")
        # r#ident: a raw identifier
        return _code(d, CState(CODE, st.stack, 0, 0, "r", "\0w"), ch)
    if mode == CPP_RAW_DELIM:
        if ch == "(":
            return st._replace(mode=CPP_RAW, run=0)
        if ch in ' )\\\t\n\r\v\f' or len(st.word) >= 16:
            return None  # not allowed in a raw string's delimiter
        return st._replace(word=st.word + ch)
    # CPP_RAW
    end = ")" + st.word + '"'
    if ch == end[st.run]:
        if st.run + 1 == len(end):
            return CState(CODE, st.stack, 0, 0, "", "\0s")
        return st._replace(run=st.run + 1)
    return st._replace(run=1 if ch == ")" else 0)


def _slash(d: Dialect, st: CState, ch: str) -> CState | None:
    """After a '/' in code: a comment, a regular expression (``aux``: one may start here), or
    a division."""
    if ch == "/":
        return st._replace(mode=LINE_COMMENT, aux=0)
    if ch == "*":
        return st._replace(mode=BLOCK_COMMENT, aux=0)
    if st.aux:  # a regular expression
        return _step(d, CState(REGEX, st.stack, 0, 0, "", "\0s"), ch)
    return _code(d, CState(CODE, st.stack, 0, 0, "", "/"), ch)


def _regex(d: Dialect, st: CState, ch: str) -> CState | None:
    """In a JavaScript regular expression, its character class, or an escape in either."""
    mode = st.mode
    if mode == REGEX_ESC:
        return st._replace(mode=st.aux, aux=0)
    if ch == "\\":
        return st._replace(mode=REGEX_ESC, aux=mode)
    if ch == "\n" or ch == "\r":  # not a regex after all (we guessed): back in code
        return CState(CODE, st.stack, 0, 0, "", "")
    if mode == REGEX_CLASS:
        return st._replace(mode=REGEX) if ch == "]" else st
    if ch == "[":
        return st._replace(mode=REGEX_CLASS)
    if ch == "/":
        return CState(CODE, st.stack, 0, 0, "", "\0s")
    return st


def _rust_quote(d: Dialect, st: CState, ch: str) -> CState | None:
    """Rust, after ``'`` or ``'x``: a character literal or a lifetime."""
    if st.mode == CHAR_QUOTE:
        if ch == "\\":
            return CState(STRING_ESC, st.stack, ord("'"), 0, "", "\0s")
        if ch.isalnum() or ch == "_":
            return st._replace(mode=CHAR_ONE)
        if ch == "\n" or ch == "\r":
            return None
        return CState(STRING, st.stack, ord("'"), 0, "", "\0s")  # '(' : a character literal
    # CHAR_ONE
    if ch == "'":
        return CState(CODE, st.stack, 0, 0, "", "\0s")  # 'x'
    return _code(d, CState(CODE, st.stack, 0, 0, "a", "\0w"), ch)  # 'a: a lifetime


# Every mode but CODE → the step of the construct it is in.
_STEPS: dict[int, Callable[[Dialect, CState, str], CState | None]] = {
    LINE_COMMENT: _comment, BLOCK_COMMENT: _comment, BLOCK_STAR: _comment,
    BLOCK_SLASH: _comment,
    STRING: _quoted, STRING_ESC: _quoted, QUOTE2: _quoted, TEXT_BLOCK: _quoted,
    TEXT_BLOCK_ESC: _quoted,
    TEMPLATE: _template, TEMPLATE_DOLLAR: _template, TEMPLATE_ESC: _template,
    RAW: _raw, RAW_CLOSE: _raw, RAW_OPEN: _raw, CPP_RAW_DELIM: _raw, CPP_RAW: _raw,
    SLASH: _slash,
    REGEX: _regex, REGEX_CLASS: _regex, REGEX_ESC: _regex,
    CHAR_QUOTE: _rust_quote, CHAR_ONE: _rust_quote,
}


def closing(d: Dialect, state: CState) -> str:
    """Text that ends the open comment, string or literal of ``state`` (brackets stay open)."""
    mode = state.mode
    if mode == LINE_COMMENT:
        return "\n"
    if mode in (BLOCK_COMMENT, BLOCK_SLASH):
        return " */" * (state.aux + 1)
    if mode == BLOCK_STAR:
        return "/" + " */" * state.aux
    if mode == STRING:
        return chr(state.aux)
    if mode == STRING_ESC:
        return "n" + chr(state.aux)
    if mode == QUOTE2:
        return '"' if state.run == 1 else ""
    if mode == TEXT_BLOCK:
        return '"' * (3 - state.run)
    if mode == TEXT_BLOCK_ESC:
        return 'n"""'
    if mode in (TEMPLATE, TEMPLATE_DOLLAR):
        return "`"
    if mode == TEMPLATE_ESC:
        return "n`"
    if mode == RAW:
        return "`" if state.aux == ord("`") else '"' + "#" * state.aux
    if mode == RAW_CLOSE:
        return "#" * (state.aux - state.run)
    if mode == RAW_OPEN:
        return '""' + "#" * state.run
    if mode == SLASH:
        return ""  # a division that waits for its operand
    if mode in (REGEX, REGEX_CLASS):  # never '//' (a comment): the body gets a character
        return ("]" if mode == REGEX_CLASS else "x") + "/"
    if mode == REGEX_ESC:
        return "n" + ("]" if state.aux == REGEX_CLASS else "") + "/"
    if mode == CHAR_QUOTE:
        return "x'"
    if mode == CHAR_ONE:
        return "'"
    if mode == CPP_RAW_DELIM:
        return "()" + state.word + '"'
    if mode == CPP_RAW:
        return (")" + state.word + '"')[state.run:]
    return ""


def close_brackets(stack: str, dialect: Dialect | None = None) -> list[str]:
    """The closer of each open bracket, innermost first (``}` `` ends a template substitution
    and its template, ``} while (x);`` a do loop's block, the dialect's ``try_close`` a try
    block)."""
    special = {TEMPLATE_OPEN: "}`", DO_OPEN: "} while (x);",
               TRY_OPEN: (dialect.try_close if dialect else "") or "}"}
    return [special.get(b) or OPENERS[b] for b in reversed(stack)]


_BLOCKS = (DO_OPEN, TRY_OPEN)


def in_code(state: CState) -> bool:
    return state.mode == CODE
