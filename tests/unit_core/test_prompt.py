"""FIM prompts within a token budget (server/prompt.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.backends.base import FimTokens
from server.backends.fake import FakeBackend
from server.prompt import build_prompt, head_within, tail_within

FAKE = FakeBackend()
ENC = FAKE.encode  # one token per character
FIM = FAKE.info.fim
FIM_IDS = (FAKE.token_id(FIM.prefix), FAKE.token_id(FIM.suffix), FAKE.token_id(FIM.middle))
PRE, SUF, MID = FIM_IDS


def dec(ids: list[int]) -> str:
    return FAKE.decode(ids)


class WordEncoder:
    """A coarse tokenizer: one token per run of non-space characters or per space character."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def __call__(self, text: str) -> list[int]:
        return [self.vocab.setdefault(t, len(self.vocab) + 100) for t in re.findall(r"\S+|\s", text)]


def at_line_start(whole: str, start: int) -> bool:
    if start == 0:
        return True
    before = whole[start - 1]
    return before == "\n" or (before == "\r" and whole[start: start + 1] != "\n")


def at_line_end(whole: str, end: int) -> bool:
    return end == len(whole) or at_line_start(whole, end)


docs = st.lists(
    st.text(alphabet=st.sampled_from("ab x=()é🙂\t"), max_size=30), max_size=12,
).flatmap(lambda lines: st.sampled_from(["\n", "\r\n"]).map(lambda nl: nl.join(lines)))


def test_fim_ids_from_fake_backend() -> None:
    assert FIM == FimTokens("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    assert None not in FIM_IDS and len(set(FIM_IDS)) == 3


# --- tail_within -------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(text=docs, budget=st.integers(min_value=1, max_value=120))
def test_tail_within_budget_and_line_start(text: str, budget: int) -> None:
    piece, ids = tail_within(text, budget, ENC)
    assert len(ids) <= budget
    assert text.endswith(piece)
    start = len(text) - len(piece)
    # the ids are the end of the piece's encoding
    full = ENC(piece)
    assert ids == full[len(full) - len(ids):]
    if len(full) <= budget:
        assert ids == full
        last_line_start = max(i for i in range(len(text) + 1) if at_line_start(text, i)) \
            if text else 0
        if not at_line_start(text, start):
            # only when even the last line alone is over budget: then a tail of it that fits
            assert len(ENC(text[last_line_start:])) > budget
            assert start > last_line_start
            return
        assert at_line_start(text, start), "tail does not start at a line start"
        # longest: the tail from the previous line start does not fit
        if start > 0:
            prev = max(i for i in range(start) if at_line_start(text, i))
            assert len(ENC(text[prev:])) > budget
    else:
        # only when the current (last) line alone is too long: its last `budget` tokens
        assert "\n" not in piece and "\r" not in piece
        assert len(ids) == budget
        last_line = re.split(r"\r\n|\r|\n", text)[-1]
        assert len(ENC(last_line)) > budget


def test_tail_within_examples() -> None:
    text = "import os\nx = 1\ndef f():\n    return x"
    assert tail_within(text, 1000, ENC)[0] == text
    assert tail_within(text, len("def f():\n    return x"), ENC)[0] == "def f():\n    return x"
    assert tail_within(text, len("def f():\n    return x") - 1, ENC)[0] == "    return x"
    assert tail_within(text, 0, ENC) == ("", [])
    assert tail_within("", 10, ENC) == ("", [])
    # a prefix ending in a line break: the empty current line always fits
    assert tail_within("abc\n", 1, ENC) == ("", [])


def test_tail_within_too_long_line_keeps_last_tokens() -> None:
    piece, ids = tail_within("x\nabc\ndefgh", 4, ENC)
    assert dec(ids) == "efgh"
    assert len(ids) == 4


def test_tail_within_text_matches_ids_when_line_too_long() -> None:
    piece, ids = tail_within("x\nabc\ndefgh", 4, ENC)
    assert dec(ids) == piece
    p = build_prompt("x\nabc\ndefgh", "", ENC, FIM, FIM_IDS, 7, 1.0)
    assert dec(p.ids[1:1 + p.prefix_tokens]) == p.prefix_text


@pytest.mark.parametrize("which", ["head", "tail"])
def test_coarse_tokens_still_cut_at_line_boundaries(which: str) -> None:
    enc = WordEncoder()
    long_word = "a" * 50
    if which == "head":
        text = long_word + "\nc d e f"
        piece, ids = head_within(text, 3, enc)
        assert len(ids) <= 3
        assert piece in ("", long_word + "\n"), piece
    else:
        text = "c d e f\n" + long_word
        piece, ids = tail_within(text, 3, enc)
        assert len(ids) <= 3
        assert piece == long_word, piece


# --- head_within -------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(text=docs, budget=st.integers(min_value=1, max_value=120))
def test_head_within_budget_and_line_end(text: str, budget: int) -> None:
    piece, ids = head_within(text, budget, ENC)
    assert len(ids) <= budget
    assert text.startswith(piece)
    assert ids == ENC(piece)
    first_end = min(i for i in range(1, len(text) + 1) if at_line_end(text, i)) if text else 0
    if not at_line_end(text, len(piece)):
        # only when even the first line with its break is over budget: then a head of it
        assert len(ENC(text[:first_end])) > budget
        assert "\n" not in piece and "\r" not in piece
        if text[len(piece)] not in "\r\n":  # (else it is the whole line, without its break)
            assert len(ENC(text[: len(piece) + 1])) > budget  # longest
        return
    # longest: the next line end does not fit
    if len(piece) < len(text):
        nxt = min(i for i in range(len(piece) + 1, len(text) + 1) if at_line_end(text, i))
        assert len(ENC(text[:nxt])) > budget


def test_head_within_examples() -> None:
    text = "    return x\n\ndef g():\n    pass\n"
    assert head_within(text, 1000, ENC)[0] == text
    assert head_within(text, len("    return x\n\n"), ENC)[0] == "    return x\n\n"
    assert head_within(text, len("    return x\n"), ENC)[0] == "    return x\n"
    # the first line does not fit with its break: as much of it as fits
    assert head_within(text, len("    return x"), ENC)[0] == "    return x"
    assert head_within(text, 6, ENC)[0] == "    re"
    assert head_within(text, 0, ENC) == ("", [])
    assert head_within("", 5, ENC) == ("", [])
    assert head_within("abc", 3, ENC)[0] == "abc"  # the end of the text is a line end
    assert head_within("a\r\nb", 2, ENC)[0] == "a"  # never splits a CRLF
    assert head_within("a\r\nb", 3, ENC)[0] == "a\r\n"


# --- build_prompt ------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(prefix=docs, suffix=docs, budget=st.integers(min_value=4, max_value=200),
       share=st.floats(min_value=0.1, max_value=1.0))
def test_build_prompt_psm_within_budget(prefix: str, suffix: str, budget: int, share: float) -> None:
    p = build_prompt(prefix, suffix, ENC, FIM, FIM_IDS, budget, share)
    assert p.n_tokens == len(p.ids) <= budget
    # PSM order: <pre> prefix <suf> suffix <mid>
    assert p.ids[0] == PRE and p.ids[-1] == MID
    assert p.ids[1 + p.prefix_tokens] == SUF
    assert [i for i in p.ids if i in FIM_IDS] == [PRE, SUF, MID]
    assert len(p.ids) == 3 + p.prefix_tokens + p.suffix_tokens
    # prefix_share: the prefix gets at most its share of what the markers leave
    room = budget - 3
    assert p.prefix_tokens <= max(1, int(room * share))
    # the suffix gets what the prefix left
    assert p.suffix_tokens <= room - p.prefix_tokens
    assert prefix.endswith(p.prefix_text) and suffix.startswith(p.suffix_text)
    assert dec(p.ids[2 + p.prefix_tokens:-1]) == p.suffix_text
    assert p.prefix_text.endswith(dec(p.ids[1:1 + p.prefix_tokens]))


@settings(max_examples=200, deadline=None)
@given(prefix=docs, budget=st.integers(min_value=1, max_value=200))
def test_no_fim_model_gets_prefix_only(prefix: str, budget: int) -> None:
    p = build_prompt(prefix, "suffix text\n", ENC, None, None, budget, 0.5)
    assert len(p.ids) <= budget
    assert p.suffix_text == "" and p.suffix_tokens == 0
    assert not any(i in FIM_IDS for i in p.ids)
    assert prefix.endswith(dec(p.ids))
    assert p.prefix_tokens == len(p.ids)


def test_no_fim_ids_also_means_prefix_only() -> None:
    p = build_prompt("abc\n", "def\n", ENC, FIM, None, 100, 0.5)
    assert p.ids == ENC("abc\n") and p.suffix_text == ""


def test_prefix_share_split() -> None:
    prefix = "".join(f"p{i:02d}\n" for i in range(40))  # 160 chars
    suffix = "".join(f"s{i:02d}\n" for i in range(40))
    p = build_prompt(prefix, suffix, ENC, FIM, FIM_IDS, 83, 0.75)  # room 80: 60 / 20
    assert p.prefix_tokens == 60 and p.prefix_text == prefix[-60:]
    assert p.suffix_tokens == 20 and p.suffix_text == suffix[:20]
    p = build_prompt(prefix, suffix, ENC, FIM, FIM_IDS, 83, 0.5)
    assert p.prefix_tokens == 40 and p.suffix_tokens == 40


def test_short_prefix_leaves_room_to_suffix() -> None:
    suffix = "".join(f"s{i:02d}\n" for i in range(40))
    p = build_prompt("ab", suffix, ENC, FIM, FIM_IDS, 83, 0.75)
    assert p.prefix_tokens == 2
    assert p.suffix_tokens == 76 and p.suffix_text == suffix[:76]


def test_empty_prefix_and_suffix() -> None:
    p = build_prompt("", "", ENC, FIM, FIM_IDS, 64, 0.75)
    assert p.ids == [PRE, SUF, MID]
    assert (p.prefix_text, p.suffix_text, p.prefix_tokens, p.suffix_tokens) == ("", "", 0, 0)
    p = build_prompt("", "x = 1\n", ENC, FIM, FIM_IDS, 64, 0.75)
    assert p.ids == [PRE, SUF, *ENC("x = 1\n"), MID]
    p = build_prompt("x = ", "", ENC, FIM, FIM_IDS, 64, 0.75)
    assert p.ids == [PRE, *ENC("x = "), SUF, MID]
    p = build_prompt("", "", ENC, None, None, 64, 0.75)
    assert p.ids == []


@pytest.mark.parametrize("budget", [4, 5, 6, 8])
def test_tiny_budgets(budget: int) -> None:
    prefix = "def f(x):\n    return x\n"
    suffix = "\nprint(f(1))\n"
    p = build_prompt(prefix + "abcdefghij", suffix, ENC, FIM, FIM_IDS, budget, 0.75)
    assert len(p.ids) <= budget
    assert p.ids[0] == PRE and p.ids[-1] == MID
    assert p.prefix_tokens >= 1  # at least one token of the cursor line


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_budget_below_marker_count_overshoots_by_design(budget: int) -> None:
    # Not reachable through the config (contextTokens >= 64): three markers + one prefix token.
    p = build_prompt("abc", "def", ENC, FIM, FIM_IDS, budget, 0.75)
    assert len(p.ids) == 4
    assert p.ids == [PRE, ENC("c")[0], SUF, MID]


def test_cursor_keystroke_changes_only_end_of_prefix_ids() -> None:
    """Prefix cut at line starts: typing on the last line keeps earlier prompt tokens stable."""
    lines = "".join(f"line {i}\n" for i in range(200))
    a = build_prompt(lines + "x = f", "\n", ENC, FIM, FIM_IDS, 300, 0.75)
    b = build_prompt(lines + "x = fo", "\n", ENC, FIM, FIM_IDS, 300, 0.75)
    n = a.prefix_tokens
    assert b.ids[1:1 + n] == a.ids[1:1 + n]


# --- cache-friendly prompts ---------------------------------------------------------------------

def test_aligned_tail_start_stays_put_while_typing() -> None:
    from server.prompt import aligned_tail

    doc = "".join(f"line_{i} = {i}\n" for i in range(200))
    first, _ = aligned_tail(doc, 400, ENC, 16)
    assert len(first) <= 400 - 5, "test needs headroom for the typed text"
    start = len(doc) - len(first)
    # The start is a line whose index is a multiple of 16.
    assert doc[:start].count("\n") % 16 == 0
    typed = doc + "x = 1"
    second, _ = aligned_tail(typed, 400, ENC, 16)
    assert len(typed) - len(second) == start, "one keystroke moved the prompt start"


def test_aligned_tail_falls_back_when_no_aligned_start_fits() -> None:
    from server.prompt import aligned_tail

    doc = "a = 1\n" * 40
    piece, ids = aligned_tail(doc, 10, ENC, 32)
    assert len(ids) <= 10 and piece and doc.endswith(piece)


def test_block_suffix_stops_at_the_end_of_the_block() -> None:
    from server.prompt import block_suffix

    suffix = "\n        return x\n    y = 2\n\ndef g():\n    pass\n"
    assert block_suffix(suffix, 8) == "\n        return x\n"
    assert block_suffix(suffix, 4) == "\n        return x\n    y = 2\n\n"
    assert block_suffix(suffix, 0) == suffix


# --- cost: bounded by the budget, not by the document --------------------------------------------

class CountingEncoder:
    """The fake's encoder, counting the characters it was given."""

    def __init__(self) -> None:
        self.chars = 0

    def __call__(self, text: str) -> list[int]:
        self.chars += len(text)
        return ENC(text)


@pytest.mark.parametrize("doc", ["one_line", "many_lines"])
@pytest.mark.parametrize("where", ["end", "middle"])
def test_prompt_tokenizes_a_window_not_the_document(doc: str, where: str) -> None:
    """A 1 MB document (one minified line, or 40,000 lines): what is tokenized to build a
    prompt of 768 tokens stays within a few windows of ``budget * _CHARS_PER_TOKEN``."""
    from server.prompt import _CHARS_PER_TOKEN, block_suffix

    text = ("var a=function(b){return b*2};" * 35_000 if doc == "one_line"
            else "    value = compute(1, 2)\n" * 40_000)
    cut = len(text) if where == "end" else len(text) // 2
    enc = CountingEncoder()
    p = build_prompt(text[:cut], block_suffix(text[cut:], 4), enc, FIM, FIM_IDS, 768, 0.75,
                     None, 32)
    assert p.n_tokens <= 768
    assert enc.chars < 40 * 768 * _CHARS_PER_TOKEN, enc.chars
    if where == "middle":
        assert p.suffix_tokens > 0  # a head of the line after the cursor, even inside a line


def test_head_within_cuts_inside_a_first_line_longer_than_the_budget() -> None:
    text = "x" * 10_000 + "\nnext line\n"
    piece, ids = head_within(text, 50, ENC)
    assert piece == "x" * 50 and len(ids) == 50


def _old_aligned_tail(text: str, budget: int, align: int) -> tuple[str, list[int]]:
    """aligned_tail as it was, from a split of the whole text into lines (the reference)."""
    from server.documents import line_starts
    from server.prompt import _earliest_fitting, _window

    if align <= 1 or budget <= 0 or not text:
        return tail_within(text, budget, ENC)
    window = _window(text, budget, ENC, from_end=True)
    base = len(text) - len(window)
    candidates = [s - base for i, s in enumerate(line_starts(text)) if i % align == 0 and
                  s >= base]
    best = _earliest_fitting(window, candidates, budget, ENC)
    return best if best is not None else tail_within(text, budget, ENC)


crlf_docs = st.lists(st.sampled_from(["a", "bb", " ", "\n", "\r\n", "\r", "ccc"]),
                     max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=crlf_docs, budget=st.integers(min_value=1, max_value=40),
       align=st.integers(min_value=1, max_value=6), chars=st.sampled_from([1, 2, 8]))
def test_aligned_tail_counts_lines_as_a_split_would(text: str, budget: int, align: int,
                                                    chars: int) -> None:
    """Line numbers are counted (in C) instead of splitting the whole prefix: the same starts,
    with any mix of \\n, \\r\\n and \\r, wherever the window begins (a small
    ``_CHARS_PER_TOKEN`` makes windows begin mid-text and mid-\\r\\n)."""
    from unittest import mock

    from server import prompt
    from server.prompt import aligned_tail

    with mock.patch.object(prompt, "_CHARS_PER_TOKEN", chars):
        assert aligned_tail(text, budget, ENC, align) == _old_aligned_tail(text, budget, align)


def _old_block_suffix(suffix: str, indent: int) -> str:
    from server.documents import line_starts, split_lines

    if indent <= 0:
        return suffix
    starts, lines = line_starts(suffix), split_lines(suffix)
    for i in range(1, len(lines)):
        if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) < indent:
            return suffix[: starts[i]]
    return suffix


@settings(max_examples=400, deadline=None)
@given(suffix=st.lists(st.sampled_from(["x", " ", "  ", "\t", "\n", "\r\n", "\r", "\x0c",
                                        "\u2028", "\xa0", "y = 1"]), max_size=20).map("".join),
       indent=st.integers(min_value=0, max_value=5))
def test_block_suffix_is_one_search_with_the_same_answer(suffix: str, indent: int) -> None:
    from server.prompt import block_suffix

    assert block_suffix(suffix, indent) == _old_block_suffix(suffix, indent)
