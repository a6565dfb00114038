"""Python's lexical state, fed text incrementally: strings, comments, brackets, continuations.

Pure and cheap: the state is a small tuple, so a cursor can keep one per accepted token and
roll back. ``feed`` returns None when the text is lexically impossible after the state (a line
break inside a one-line string, a closer that does not match, a character Python never allows
outside strings and comments).
"""

from __future__ import annotations

from typing import NamedTuple

# Modes (small ints, so the vocabulary tables can index by them).
CODE = 0
CODE_ESC = 1  # after a backslash in code: only a line break may follow
COMMENT = 2
S1, S1_ESC = 3, 4  # in '...', after a backslash in it
D1, D1_ESC = 5, 6  # in "..."
S3, S3_ESC = 7, 8  # in '''...'''
D3, D3_ESC = 9, 10  # in """..."""
PEND1_S, PEND2_S = 11, 12  # code just read ' (or '')  : a string, or an empty one / a triple
PEND1_D, PEND2_D = 13, 14  # the same for "
N_MODES = 15

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}
# Never valid in Python code outside strings and comments (3.11): three ASCII symbols, and every
# control character but tab, line breaks and form feed ("invalid non-printable character").
FORBIDDEN = frozenset("$?`\x7f") | frozenset(
    chr(c) for c in range(32) if chr(c) not in "\t\n\r\x0c")


class LexState(NamedTuple):
    mode: int = CODE
    stack: str = ""  # open brackets, innermost last
    run: int = 0  # quotes just seen inside a triple-quoted string


START = LexState()


def feed(state: LexState, text: str) -> LexState | None:
    mode, stack, run = state
    for ch in text:
        if mode == CODE:
            if ch == "#":
                mode = COMMENT
            elif ch == "'":
                mode = PEND1_S
            elif ch == '"':
                mode = PEND1_D
            elif ch == "\\":
                mode = CODE_ESC
            elif ch in OPENERS:
                stack += ch
            elif ch in CLOSERS:
                if not stack or stack[-1] != CLOSERS[ch]:
                    return None
                stack = stack[:-1]
            elif ch in FORBIDDEN:
                return None
        elif mode == COMMENT:
            if ch == "\n" or ch == "\r":
                mode = CODE
        elif mode == CODE_ESC:
            if ch == "\n" or ch == "\r":  # CPython reads a lone \r as a line break too
                mode = CODE
            else:
                return None
        elif mode in (PEND1_S, PEND1_D):
            quote = "'" if mode == PEND1_S else '"'
            if ch == quote:
                mode = PEND2_S if mode == PEND1_S else PEND2_D
            else:
                mode = S1 if quote == "'" else D1
                sub = feed(LexState(mode, stack, 0), ch)
                if sub is None:
                    return None
                mode, stack, run = sub
        elif mode in (PEND2_S, PEND2_D):
            quote = "'" if mode == PEND2_S else '"'
            if ch == quote:
                mode, run = (S3 if quote == "'" else D3), 0
            else:  # it was an empty string: back in code
                sub = feed(LexState(CODE, stack, 0), ch)
                if sub is None:
                    return None
                mode, stack, run = sub
        elif mode in (S1, D1):
            if ch == "\\":
                mode += 1
            elif ch == ("'" if mode == S1 else '"'):
                mode = CODE
            elif ch == "\n" or ch == "\r":
                return None  # unterminated one-line string
        elif mode in (S1_ESC, D1_ESC, S3_ESC, D3_ESC):
            if ch == "\r":  # \ + \r\n is one escaped line break
                continue
            mode -= 1
            run = 0
        elif mode in (S3, D3):
            if ch == "\\":
                mode, run = mode + 1, 0
            elif ch == ("'" if mode == S3 else '"'):
                run += 1
                if run == 3:
                    mode, run = CODE, 0
            else:
                run = 0
    return LexState(mode, stack, run)


def in_string(state: LexState) -> bool:
    return state.mode in (S1, S1_ESC, D1, D1_ESC, S3, S3_ESC, D3, D3_ESC, PEND1_S, PEND1_D)


def closing(state: LexState) -> str:
    """Text that ends the open string, comment or continuation of ``state`` (brackets stay
    open), so a parser sees the code as it stands."""
    mode, _, run = state
    if mode == COMMENT or mode == CODE_ESC:
        return "\n"
    if mode in (S1_ESC, D1_ESC, S3_ESC, D3_ESC):
        return "x" + closing(LexState(mode - 1, state.stack, 0))
    if mode == S1 or mode == PEND1_S:
        return "'"
    if mode == D1 or mode == PEND1_D:
        return '"'
    if mode == S3:
        return "'" * (3 - run)
    if mode == D3:
        return '"' * (3 - run)
    return ""


def signature(mode: int, text: str) -> tuple[bool, str]:
    """What ``text`` needs from a state in ``mode`` whose bracket stack is unknown: whether it
    fails whatever the stack, and the openers it closes below its own (innermost first), which
    the stack must end with (reversed)."""
    need = ""
    # Simulate with a stack of placeholders: closing one tells what was required.
    stack = "\0" * 64
    state: LexState | None = LexState(mode, stack, 0)
    for ch in text:
        assert state is not None
        if state.mode in (PEND2_S, PEND2_D) and ch != ("'" if state.mode == PEND2_S else '"'):
            state = LexState(CODE, state.stack, 0)  # '' was an empty string: code again
        if state.mode == CODE and ch in CLOSERS and state.stack.endswith("\0"):
            need += CLOSERS[ch]
            state = LexState(CODE, state.stack[:-1], 0)
            continue
        state = feed(state, ch)
        if state is None:
            return True, need
    return False, need
