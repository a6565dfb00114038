import text_stats
from hypothesis import given, reject, strategies as st
from hypothesis import settings
from text_stats import word_frequencies


@settings(derandomize=True, deadline=None, database=None)
@given(text=st.text(), top=st.integers())
def test_fuzz_word_frequencies(text: str, top: int) -> None:
    try:
        text_stats.word_frequencies(text=text, top=top)
    except (TypeError, ValueError):
        reject()
