"""The reviewer prompt (Coder-Reviewer, Zhang et al. 2022): how likely the model finds the
function's docstring *after* reading a candidate's code, p(docstring | code).

A candidate that does what the docstring says makes the docstring predictable; one that does
something else (or nothing) does not. The generator scores the docstring's tokens after the code
(one prompt evaluation per candidate, no sampling); the signal is their mean log-probability.

Only the user's own text is used: the function's docstring as the file has it.

Measured, not served: ``benchmarks/rerank_reviewer.py`` scores the candidates lsp-bench
collected and ``benchmarks/rerank_fit.py --reviewer`` fits with the signal. On the fit split
(even HumanEval tasks) it gave no weight and ranked worse alone than the log-probability, and
at about 3.5 s per candidate on the 2-core CPU it costs more than all other signals together
(BENCHMARKS.md, issue 15), so the server's reranker does not compute it.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from server.rerank.examples import target_function

# The first string literal after the signature: its opening quotes, its text, the same closing
# quotes. Raw/byte prefixes allowed (r"""...""").
_DOCSTRING = re.compile(r'[rRuU]?(?P<q>"""|\'\'\')(?P<text>.*?)(?P=q)', re.S)
_SIGNATURE_END = re.compile(r"\)\s*(?:->[^:]*)?:[ \t]*(?:#[^\n]*)?\n")

# The longest docstring scored: a long one costs prompt evaluation time for little more signal.
MAX_DOC_CHARS = 2000


@dataclass(frozen=True)
class ReviewerPrompt:
    head: str  # the code (signature + candidate) and the request for its docstring
    tail: str  # the docstring: the tokens scored


def docstring_span(prefix: str) -> tuple[int, int, int, str] | None:
    """The offsets of the function at the cursor (the last ``def`` in ``prefix``) and of its
    docstring's start and end, and the docstring's dedented text; None if it has none."""
    found = target_function(prefix)
    if found is None:
        return None
    _, start = found
    sig = _SIGNATURE_END.search(prefix, start)
    if sig is None:
        return None
    rest = prefix[sig.end():]
    stripped = rest.lstrip()
    if not stripped.startswith(('"', "'", "r", "R", "u", "U")):
        return None
    m = _DOCSTRING.match(stripped)
    if m is None:
        return None
    begin = sig.end() + (len(rest) - len(stripped))
    text = inspect.cleandoc(m.group("text"))
    if not text:
        return None
    return start, begin, begin + m.end(), text


def _function_rest(suffix: str, function: str) -> str:
    """The part of ``suffix`` that still belongs to the function (lines indented deeper than
    its ``def``, and blank lines): the rest of the file is not the candidate's code."""
    indent = len(function) - len(function.lstrip(" \t"))
    out = []
    for i, line in enumerate(suffix.splitlines(keepends=True)):
        if i and line.strip() and len(line) - len(line.lstrip(" \t")) <= indent:
            break
        out.append(line)
    return "".join(out)


def reviewer_prompt(prefix: str, candidate: str, suffix: str = "") -> ReviewerPrompt | None:
    """The candidate in its function without the docstring, then the docstring to be scored.
    None when the function at the cursor has no docstring above the cursor."""
    span = docstring_span(prefix)
    if span is None:
        return None
    start, begin, end, text = span
    # The body lines already written above the cursor (none: only the cursor's indentation).
    above = prefix[end:].lstrip("\n") if prefix[end:].strip() else ""
    before = prefix[:begin].rstrip(" \t")  # keeps the signature's newline
    code = before + above + candidate + _function_rest(suffix, prefix[start:])
    code = code.rstrip() + "\n"
    doc = text[:MAX_DOC_CHARS]
    head = code + '\n\n# The docstring of the function above:\n"""\n'
    return ReviewerPrompt(head=head, tail=doc + '\n"""\n')
