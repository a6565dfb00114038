"""Reranking (server/rerank): signals, examples in the sandbox, encoders, fallbacks."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.config import RerankMode
from server.rerank import Pick, Reranker, Signal, Weights
from server.rerank.encoder import (
    EncoderError,
    Pooling,
    TransformersEncoder,
    make_encoder,
    pooling_of,
)
from server.rerank.examples import Example, ExampleRun, ExampleRunner, extract, target_function
from server.rerank.rank import behaviour, consensus, dedupe, mean_logprob
from testgen.sandbox import Isolation, detect

PREFIX = '''import math


def add(a, b):
    """Add two numbers.

    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    For example: add(10, 5) == 15
    """
'''
SUFFIX = "\n\nassert add(1, 1) == 2\n"
GOOD = "    return a + b\n"
BAD = "    return a - b\n"


# --- pure parts ----------------------------------------------------------------------------------

def test_examples_come_from_the_docstring_and_the_files_asserts() -> None:
    assert target_function(PREFIX) == ("add", PREFIX.index("def add"))
    got = extract(PREFIX, SUFFIX)
    assert got == [Example("add(2, 3)", "5"), Example("add(-1, 1)", "0"),
                   Example("add(10, 5)", "15"), Example("add(1, 1) == 2", None)]


def test_a_signature_arrow_is_not_an_example() -> None:
    prefix = "def f(x: int) -> int:\n    \"\"\"Twice x.\"\"\"\n"
    assert extract(prefix, "") == []
    assert extract("x = 1\n", "") == []  # no function at the cursor: nothing to check


def test_examples_about_other_functions_are_ignored() -> None:
    prefix = 'def g(x):\n    """\n    >>> h(1)\n    2\n    """\n'
    assert extract(prefix, "assert h(2) == 3\n") == []


def test_dedupe_drops_empties_and_whitespace_repeats_only() -> None:
    picks = [Pick("return a + b", 0), Pick("", 1), Pick("return  a + b\n", 2),
             Pick("return a+b", 3), Pick("   ", 4)]
    groups = dedupe(picks)
    assert [[p.origin for p in g] for g in groups] == [[0, 2], [3]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab \n", max_size=6), min_size=1, max_size=10),
       st.lists(st.floats(-5, 0), min_size=10, max_size=10))
def test_the_reranker_orders_and_never_drops(texts: list[str], lps: list[float]) -> None:
    picks = [Pick(t, i, [lps[i]], i == 0) for i, t in enumerate(texts)]
    ranked = Reranker(RerankMode.LOGPROB).rank(picks, "", "", "python").ranked
    distinct = {" ".join(t.split()) for t in texts} - {""}
    assert len(ranked) == len(distinct)
    assert sorted(o for r in ranked for o in r.origins) == \
        [i for i, t in enumerate(texts) if t.strip()]
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)


def test_logprob_mode_prefers_what_the_model_believed() -> None:
    picks = [Pick("a", 0, [-1.0, -1.0], True), Pick("b", 1, [-0.1, -0.2]),
             Pick("c", 2, [-3.0])]
    r = Reranker(RerankMode.LOGPROB, Weights({Signal.LOGPROB: 1.0})).rank(picks, "", "", "")
    assert [x.text for x in r.ranked] == ["b", "a", "c"]
    off = Reranker(RerankMode.OFF).rank(picks, "", "", "")
    assert [x.text for x in off.ranked] == ["a", "b", "c"]  # decoding order
    assert mean_logprob([float("-inf"), -1.0]) == -1.0 and mean_logprob([]) == -5.0


def test_consensus_counts_duplicates_and_behaviour_ignores_crashes() -> None:
    v = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    # Group 0 has two members (each agrees fully with the other), group 1 one.
    assert consensus(v, [2, 1]) == pytest.approx([0.5, 0.0])
    assert consensus(v[:1], [1]) == [1.0]
    runs = [ExampleRun(1, 2, "[1]"), ExampleRun(1, 2, "[1]"), ExampleRun(0, 2, "!NameError"),
            ExampleRun(0, 2, "!NameError")]
    assert behaviour(runs, [1, 2, 1, 1]) == pytest.approx([0.6, 0.6, 0.0, 0.0])


# --- the examples, run for real in the sandbox --------------------------------------------------

def _runner(timeout: float = 3.0) -> ExampleRunner:
    iso = Isolation.AUTO if detect(Isolation.AUTO).usable else Isolation.NONE
    return ExampleRunner(iso, timeout)


def test_candidates_that_fail_the_files_examples_drop_behind() -> None:
    # The wrong candidate is the one the model "believed" most.
    picks = [Pick(BAD, 0, [-0.01], True), Pick(GOOD, 1, [-2.0]), Pick(BAD + "\n", 2, [-0.01])]
    r = Reranker(RerankMode.FULL, examples=_runner()).rank(picks, PREFIX, SUFFIX, "python")
    assert [x.text for x in r.ranked] == [GOOD, BAD]
    assert r.examples == 4
    good, bad = r.ranked
    assert good.examples is not None and good.examples.passed == 4
    assert bad.examples is not None and bad.examples.passed == 0
    assert good.signals[Signal.EXAMPLES] == 1.0


def test_a_looping_or_printing_candidate_does_not_stop_the_others() -> None:
    loop = "    while True:\n        pass\n"
    noisy = "    print('hi' * 1000)\n    return a + b\n"
    crash = "    return undefined_name\n"
    runs = _runner(2.0).run([PREFIX + c + SUFFIX for c in (loop, noisy, crash, GOOD)],
                            extract(PREFIX, SUFFIX))
    assert [r.passed for r in runs] == [0, 4, 0, 4]
    assert runs[0].fingerprint == "!timeout" and runs[2].fingerprint == "!NameError"
    assert runs[1].fingerprint == runs[3].fingerprint  # same behaviour: one cluster


def test_the_candidate_cannot_reach_the_network_or_the_home_directory() -> None:
    runner = _runner()
    if runner.isolation is not Isolation.AUTO:
        pytest.skip("bubblewrap is not available here")
    probe = ("    import os, socket\n"
             "    try:\n        socket.create_connection(('1.1.1.1', 80), 1); net = 'yes'\n"
             "    except OSError:\n        net = 'no'\n"
             "    return str(os.path.exists(os.path.expanduser('~/.ssh'))) + net\n")
    prefix = 'def add(a, b):\n    """\n    >>> add(1, 2)\n    \'Falseno\'\n    """\n'
    (run,) = runner.run([prefix + probe], extract(prefix, ""))
    assert run.passed == 1, run


def test_a_failing_sandbox_falls_back_to_logprob_order_with_a_warning(caplog) -> None:  # type: ignore[no-untyped-def]
    class Broken:
        def run(self, *a: object, **k: object) -> list[ExampleRun]:
            raise RuntimeError("no sandbox today")

    picks = [Pick(BAD, 0, [-0.5], True), Pick(GOOD, 1, [-0.1])]
    with caplog.at_level(logging.WARNING):
        r = Reranker(RerankMode.FULL, Weights({Signal.LOGPROB: 1.0}),
                     examples=Broken()).rank(picks, PREFIX, SUFFIX, "python")
    assert [x.text for x in r.ranked] == [GOOD, BAD]
    assert "no sandbox today" in caplog.text and r.warnings


def test_cancelling_stops_the_examples_run() -> None:
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="cancelled"):
        _runner(20.0).run([PREFIX + "    while True:\n        pass\n" + SUFFIX],
                          extract(PREFIX, SUFFIX), cancel)
    assert time.monotonic() - t0 < 5.0


# --- encoders ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised RoBERTa model and a byte-level BPE tokenizer, written as a
    CodeBERT folder is (config.json, weights, vocab.json, merges.txt): the real code path."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = tmp_path_factory.mktemp("codebert-tiny")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["def add(a, b):\n    return a + b\n", "x = [i for i in range(3)]"],
                            vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    tok = RobertaTokenizerFast(vocab_file=str(folder / "vocab.json"),
                               merges_file=str(folder / "merges.txt"))
    tok.save_pretrained(str(folder))
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=300, pad_token_id=tok.pad_token_id)
    RobertaModel(cfg).save_pretrained(str(folder))
    return folder


def test_a_codebert_folder_embeds_with_cls_pooling_and_caches(tiny_roberta: Path) -> None:
    assert pooling_of(tiny_roberta) == Pooling.CLS
    enc = make_encoder(str(tiny_roberta))
    assert isinstance(enc, TransformersEncoder) and enc.pooling == Pooling.CLS
    vecs = enc.embed(["return a + b", "return a - b", "return a + b"])
    assert vecs.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vecs[0], vecs[2])
    assert enc.encoded == 2  # the repeat came from the cache
    enc.embed(["return a + b"])
    assert enc.encoded == 2


def test_one_call_may_hold_more_texts_than_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Repository chunks are embedded many at a time: the cache trims after the answer is built
    # (it looked evicted texts up again and raised KeyError).
    import server.rerank.encoder as encoder_module

    class Counting(encoder_module._Cached):
        def _encode(self, texts: list[str]) -> np.ndarray:
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    monkeypatch.setattr(encoder_module, "_CACHE_TEXTS", 4)
    enc = Counting()
    texts = [f"chunk {'x' * i}" for i in range(10)]
    vecs = enc.embed([*texts, texts[0]])
    assert vecs.shape == (11, 2) and np.allclose(vecs[0], vecs[10])
    assert enc.encoded == 10 and len(enc._cache) == 4
    enc.embed([texts[0], *texts[-3:]])  # the last four used stayed cached
    assert enc.encoded == 10


def test_unixcoder_and_sentence_transformers_folders_mean_pool(tmp_path: Path,
                                                               tiny_roberta: Path) -> None:
    uni = tmp_path / "unixcoder-base"
    uni.mkdir()
    (uni / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    assert pooling_of(uni) == Pooling.MEAN
    st_folder = tmp_path / "st"
    (st_folder / "1_Pooling").mkdir(parents=True)
    (st_folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}))
    assert pooling_of(st_folder) == Pooling.MEAN


def test_the_encoder_drives_consensus_in_full_mode(tiny_roberta: Path) -> None:
    picks = [Pick("return a + b", 0, [-1.0], True), Pick("return a - b", 1, [-1.0]),
             Pick("return a + b ", 2, [-1.0])]
    enc = make_encoder(str(tiny_roberta))
    assert enc is not None
    r = Reranker(RerankMode.FULL, Weights({Signal.CONSENSUS: 1.0}),
                 encoder=lambda: enc).rank(picks, "", "", "python")
    a, b = enc.embed(["return a + b", "return a - b"])
    s = float(a @ b)
    by_text = {x.text: x.signals for x in r.ranked}
    # Two votes of three: its duplicate agrees fully, the other candidate by s.
    assert by_text["return a + b"][Signal.CONSENSUS] == pytest.approx((1 + s) / 2, abs=1e-5)
    assert by_text["return a - b"][Signal.CONSENSUS] == pytest.approx(s, abs=1e-5)
    assert Signal.CONTEXT in by_text["return a + b"] and "embeddings" in r.seconds


def test_a_missing_encoder_falls_back_with_a_warning(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EncoderError):
        make_encoder(str(tmp_path / "nothing-here"))
    picks = [Pick("a", 0, [-2.0], True), Pick("b", 1, [-0.1])]
    with caplog.at_level(logging.WARNING):
        r = Reranker(RerankMode.FULL, Weights({Signal.LOGPROB: 1.0}), compute_all=True,
                     encoder=lambda: make_encoder(str(tmp_path / "nothing-here"))
                     ).rank(picks, "", "", "python")
    assert [x.text for x in r.ranked] == ["b", "a"]
    assert "without embeddings" in caplog.text
    assert make_encoder("none") is None
    with pytest.raises(EncoderError, match="llama.cpp"):
        make_encoder("generator", "")


def test_an_encoder_without_weight_is_never_loaded() -> None:
    def boom() -> None:
        raise AssertionError("loaded")

    r = Reranker(RerankMode.FULL, Weights({Signal.LOGPROB: 1.0}), encoder=boom)  # type: ignore[arg-type]
    assert Signal.CONSENSUS not in r.signals and r.encoder() is None


def test_naming_an_encoder_turns_the_embedding_signals_on(tiny_roberta: Path) -> None:
    from server.config import Config
    from server.rerank import DEFAULT_WEIGHTS, EMBEDDING_WEIGHTS, reranker_for, weights_for

    for no_encoder in ("none", " None ", "off", ""):
        assert weights_for(no_encoder) is DEFAULT_WEIGHTS and make_encoder(no_encoder) is None
    assert weights_for("minilm") is EMBEDDING_WEIGHTS
    assert weights_for("/models/unixcoder") is EMBEDDING_WEIGHTS
    assert weights_for("generator").weights.get(Signal.CONSENSUS, 0) > 0
    assert EMBEDDING_WEIGHTS.weights.get(Signal.CONSENSUS, 0) > 0
    default = reranker_for(Config())
    assert Config().rerank_encoder == "none" and default.encoder() is None
    assert Signal.CONSENSUS not in default.signals
    named = reranker_for(Config(rerank_encoder=str(tiny_roberta), rerank=RerankMode.LOGPROB))
    assert Signal.CONSENSUS not in named.signals  # logprob mode never embeds
    named = reranker_for(Config(rerank_encoder=str(tiny_roberta), sandbox=Isolation.NONE))
    assert Signal.CONSENSUS in named.signals and named.encoder() is not None


def test_the_packaged_minilm_encoder_loads_offline() -> None:
    enc = make_encoder("minilm")
    assert enc is not None
    v = enc.embed(["def add(a, b): return a + b", "def add(x, y): return x + y",
                   "import os; os.remove('/')"])
    assert v.shape == (3, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])


def test_more_docstring_example_forms() -> None:
    prefix = '''def pick(nums: list[int], k: int) -> int:
    """The k-th smallest.

    >>> pick([3, 1, 2], 1) == 1
    >>> pick([5], 1)
    5
    pick([2, 2], 2) = 2
    pick([9, 8], 1)  # => 8
    pick([], 1) = pick([1], 1) - 1
    Example 1:
        Input: nums = [4, 5, 6], k = 2
        Output: 5
        Explanation: the second smallest.
    Example 2:
        Input: grid : [[1]] k : 1
        Output: 1
    For nums = [7, 6], k = 1 the output should be 6.
    """
'''
    assert extract(prefix, "") == [
        Example("pick([3, 1, 2], 1)", "1"), Example("pick([5], 1)", "5"),
        Example("pick([2, 2], 2)", "2"), Example("pick([9, 8], 1)", "8"),
        Example("pick(nums = [4, 5, 6], k = 2)", "5"),
        Example("pick(nums = [7, 6], k = 1)", "6")]


def test_a_bare_input_is_an_argument_only_of_a_one_parameter_function() -> None:
    one = 'def f(n):\n    """\n    Input: 12\n    Output: (4, 6)\n    """\n'
    two = 'def g(n, m):\n    """\n    Input: 12\n    Output: (4, 6)\n    """\n'
    wrong_name = 'def h(n):\n    """\n    Input: x = 12\n    Output: 3\n    """\n'
    assert extract(one, "") == [Example("f(12)", "(4, 6)")]
    assert extract(two, "") == [] and extract(wrong_name, "") == []
