"""Request cache and typed-through suggestions (server/cache.py)."""

from __future__ import annotations

import pytest

from server.cache import CompletionCache, request_key

URI = "file:///a.py"
SK = "settings-1"


def key(i: int) -> str:
    return request_key(f"prefix {i}", "suffix", "single_line", SK)


# --- request_key -------------------------------------------------------------------------------

def test_request_key_is_deterministic() -> None:
    assert request_key("a", "b", "single_line", SK) == request_key("a", "b", "single_line", SK)


@pytest.mark.parametrize("other", [
    ("ab", "b", "single_line", SK),
    ("a", "bb", "single_line", SK),
    ("a", "b", "multi_line", SK),
    ("a", "b", "single_line", "settings-2"),
    ("", "ab", "single_line", SK),  # the split point matters
    ("a\x00b", "", "single_line", SK),
])
def test_request_key_changes_with_any_part(other: tuple[str, str, str, str]) -> None:
    assert request_key(*other) != request_key("a", "b", "single_line", SK)


def test_request_key_looks_at_text_near_cursor_only() -> None:
    tail = "x" * 9000
    assert request_key("A" + tail, "s", "m", SK) == request_key("B" + tail, "s", "m", SK)
    head = "y" * 3000
    assert request_key("p", head + "A", "m", SK) == request_key("p", head + "B", "m", SK)
    # ...but within the window every character counts
    assert request_key("A" + "x" * 100, "s", "m", SK) != request_key("B" + "x" * 100, "s", "m", SK)


def test_request_key_handles_lone_surrogates() -> None:
    assert request_key("\ud800", "", "m", SK) != request_key("\udc00", "", "m", SK)


# --- LRU -------------------------------------------------------------------------------------------

def test_identical_key_hit_and_miss_counters() -> None:
    c = CompletionCache(4)
    assert c.get(key(1)) is None
    c.put(key(1), "foo()")
    assert c.get(key(1)) == "foo()"
    assert c.get(key(2)) is None
    assert (c.hits, c.misses) == (1, 2)


def test_empty_suggestion_is_cached_as_a_hit() -> None:
    c = CompletionCache(4)
    c.put(key(1), "")
    assert c.get(key(1)) == ""
    assert c.hits == 1


def test_lru_evicts_least_recently_used() -> None:
    c = CompletionCache(3)
    for i in range(3):
        c.put(key(i), f"s{i}")
    assert c.get(key(0)) == "s0"  # 0 becomes most recent; 1 is now the oldest
    c.put(key(3), "s3")
    assert c.get(key(1)) is None
    assert [c.get(key(i)) for i in (0, 2, 3)] == ["s0", "s2", "s3"]
    c.put(key(2), "s2b")  # re-put refreshes, keeps size
    c.put(key(4), "s4")  # evicts 0 (order now 3, 2, 4 after 0 was oldest)
    assert c.get(key(0)) is None
    assert c.get(key(2)) == "s2b" and c.get(key(3)) == "s3" and c.get(key(4)) == "s4"


def test_lru_size_bound() -> None:
    c = CompletionCache(5)
    for i in range(50):
        c.put(key(i), str(i))
    assert sum(c.get(key(i)) is not None for i in range(50)) == 5
    assert all(c.get(key(i)) == str(i) for i in range(45, 50))


@pytest.mark.parametrize("entries", [0, -1])
def test_zero_entries_disables_lru(entries: int) -> None:
    c = CompletionCache(entries)
    c.put(key(1), "foo")
    assert c.get(key(1)) is None


def test_clear() -> None:
    c = CompletionCache(4)
    c.put(key(1), "foo")
    c.remember_shown(URI, "x = ", "\n", "foo(1)", SK)
    c.clear()
    assert c.get(key(1)) is None
    assert c.typed_through(URI, "x = f", "\n", SK) is None


# --- typed-through -------------------------------------------------------------------------------

@pytest.fixture
def shown() -> CompletionCache:
    c = CompletionCache(8)
    c.remember_shown(URI, "x = ", "\nprint(x)\n", "foo(1, 2)", SK)
    return c


@pytest.mark.parametrize("typed,rest", [
    ("f", "oo(1, 2)"),
    ("foo", "(1, 2)"),
    ("foo(1,", " 2)"),
    ("foo(1, 2", ")"),
])
def test_typed_through_returns_rest(shown: CompletionCache, typed: str, rest: str) -> None:
    assert shown.typed_through(URI, "x = " + typed, "\nprint(x)\n", SK) == rest


def test_typed_through_counts_a_hit(shown: CompletionCache) -> None:
    before = shown.hits
    shown.typed_through(URI, "x = f", "\nprint(x)\n", SK)
    assert shown.hits == before + 1


@pytest.mark.parametrize("prefix,suffix,settings_key,uri", [
    ("x = g", "\nprint(x)\n", SK, URI),  # typed something else
    ("x = fox", "\nprint(x)\n", SK, URI),  # diverged after a matching start
    ("x = f", "\nprint(y)\n", SK, URI),  # suffix changed
    ("x = f", ")\nprint(x)\n", SK, URI),  # auto-inserted closer changed the suffix
    ("x = foo(1, 2)", "\nprint(x)\n", SK, URI),  # whole suggestion typed
    ("x = f", "\nprint(x)\n", "settings-2", URI),  # different settings
    ("x = f", "\nprint(x)\n", SK, "file:///b.py"),  # other document
    ("x = ", "\nprint(x)\n", SK, URI),  # nothing typed: that is the identical request
    ("x =", "\nprint(x)\n", SK, URI),  # deleted a character
    ("y = f", "\nprint(x)\n", SK, URI),  # prefix edited before the cursor
    ("x = foo(1, 2)\n", "\nprint(x)\n", SK, URI),  # typed past the suggestion
])
def test_typed_through_none(shown: CompletionCache, prefix: str, suffix: str,
                            settings_key: str, uri: str) -> None:
    assert shown.typed_through(uri, prefix, suffix, settings_key) is None


def test_typed_through_whitespace_only_rest_is_none() -> None:
    c = CompletionCache(8)
    c.remember_shown(URI, "def f():\n    ", "\n", "return 1\n    ", SK)
    assert c.typed_through(URI, "def f():\n    return 1", "\n", SK) is None
    assert c.typed_through(URI, "def f():\n    return", "\n", SK) == " 1\n    "


def test_typed_through_multi_line_suggestion() -> None:
    c = CompletionCache(8)
    c.remember_shown(URI, "def f(x):", "\n", "\n    y = x\n    return y", SK)
    assert c.typed_through(URI, "def f(x):\n    y = x\n", "\n", SK) == "    return y"


def test_empty_suggestion_is_not_remembered(shown: CompletionCache) -> None:
    shown.remember_shown(URI, "x = ", "\nprint(x)\n", "", SK)
    # the earlier suggestion is still the one typed through
    assert shown.typed_through(URI, "x = f", "\nprint(x)\n", SK) == "oo(1, 2)"


def test_remember_shown_replaces_per_uri_and_forget(shown: CompletionCache) -> None:
    shown.remember_shown(URI, "y = ", "\n", "bar()", SK)
    assert shown.typed_through(URI, "x = f", "\nprint(x)\n", SK) is None
    assert shown.typed_through(URI, "y = b", "\n", SK) == "ar()"
    shown.forget(URI)
    assert shown.typed_through(URI, "y = b", "\n", SK) is None
    shown.forget("file:///never-seen.py")  # no error


def test_typed_through_independent_of_lru_size() -> None:
    # cache_entries bounds the request LRU only; the last shown suggestion per document is kept
    c = CompletionCache(0)
    c.remember_shown(URI, "x = ", "\n", "foo()", SK)
    assert c.typed_through(URI, "x = fo", "\n", SK) == "o()"
