"""Unit tests for server/config.py: defaults, aliases, validation, merging, environment."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.config import (
    BACKEND_FIELDS,
    DEFAULT_ENGINE_TIMEOUT_MS,
    Backend,
    BackendSpec,
    CandidatesWhen,
    Config,
    ConstraintMode,
    Device,
    EngineType,
    FlashAttention,
    LogLevel,
    ParsedSettings,
    PrefetchMode,
    Quantization,
    RegressionMode,
    RepoContextMode,
    RerankMode,
    SandboxMode,
    _parse_backends,
    config_from_environment,
    force_offline,
    parse_settings,
)

DEFAULTS = Config()

# camelCase key → (field name, a valid non-default value, the value expected on the Config)
VALID = {
    "model": ("model", "/models/tiny.gguf", "/models/tiny.gguf"),
    "backend": ("backend", "transformers", Backend.TRANSFORMERS),
    "quantization": ("quantization", "nf4", Quantization.NF4),
    "device": ("device", "cuda", Device.CUDA),
    "threads": ("threads", 2, 2),
    "contextTokens": ("context_tokens", 2048, 2048),
    "prefixShare": ("prefix_share", 0.5, 0.5),
    "maxTokensSingleLine": ("max_tokens_single_line", 32, 32),
    "maxTokensMultiLine": ("max_tokens_multi_line", 300, 300),
    "temperature": ("temperature", 0.7, 0.7),
    "topP": ("top_p", 0.5, 0.5),
    "seed": ("seed", 42, 42),
    "cacheEntries": ("cache_entries", 10, 10),
    "maxBatchSize": ("max_batch_size", 2, 2),
    "batchTimeoutMs": ("batch_timeout_ms", 0, 0),
    "kvCacheTokens": ("kv_cache_tokens", 4096, 4096),
    "kvCacheDocuments": ("kv_cache_documents", 3, 3),
    "testgenTimeBudgetS": ("testgen_time_budget_s", 60, 60),
    "testgenMaxTokens": ("testgen_max_tokens", 256, 256),
    "draftTokens": ("draft_tokens", 4, 4),
    "draftModel": ("draft_model", "default", "default"),
    "repoContext": ("repo_context", "open", RepoContextMode.OPEN),
    "repoContextTokens": ("repo_context_tokens", 256, 256),
    "repoMaxFiles": ("repo_max_files", 100, 100),
    "repoRecentEdits": ("repo_recent_edits", 4, 4),
    "repoMaxFileBytes": ("repo_max_file_bytes", 4096, 4096),
    "repoExclude": ("repo_exclude", ["*.gen.py", "data/**"], ("*.gen.py", "data/**")),
    "testgenRegressionTests": ("testgen_regression_tests", "never", RegressionMode.NEVER),
    "cacheDir": ("cache_dir", "/tmp/pingti-cache", "/tmp/pingti-cache"),
    "logLevel": ("log_level", "debug", LogLevel.DEBUG),
    "sandbox": ("sandbox", "none", SandboxMode.NONE),
    "fakeTokenDelay": ("fake_token_delay", 0.25, 0.25),
    "contextWindow": ("context_window", 4096, 4096),
    "suffixTokens": ("suffix_tokens", 16, 16),
    "alignLines": ("align_lines", 8, 8),
    "debounceMs": ("debounce_ms", 50, 50),
    "candidates": ("candidates", 3, 3),
    "candidatesWhen": ("candidates_when", "always", CandidatesWhen.ALWAYS),
    "sampleTemperature": ("sample_temperature", 0.5, 0.5),
    "rerank": ("rerank", "logprob", RerankMode.LOGPROB),
    "prefetch": ("prefetch", "off", PrefetchMode.OFF),
    "rerankEncoder": ("rerank_encoder", "/models/unixcoder", "/models/unixcoder"),
    "rerankTimeoutMs": ("rerank_timeout_ms", 500, 500),
    "constraints": ("constraints", "off", ConstraintMode.OFF),
    "flashAttention": ("flash_attention", "on", FlashAttention.ON),
    "constraintLanguages": ("constraint_languages", [], ()),
    "backends": ("backends",
                 [{"type": "openai", "url": "http://gpu-box:8000/v1"}, {"type": "local"}],
                 (BackendSpec(type=EngineType.OPENAI, url="http://gpu-box:8000/v1"),
                  BackendSpec(type=EngineType.LOCAL))),
}


def field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(Config)}


# ---------------------------------------------------------------------------------------------
# Defaults


def test_defaults():
    c = Config()
    assert c.model == "default"
    assert c.backend is Backend.AUTO
    assert c.quantization is Quantization.AUTO
    assert c.device is Device.AUTO
    assert c.threads == 0
    assert c.context_tokens == 768
    assert c.prefix_share == 0.75
    assert c.max_tokens_single_line == 48
    assert c.max_tokens_multi_line == 160
    assert c.temperature == 0.0
    assert c.top_p == 0.95
    assert c.seed == 0
    assert c.cache_entries == 256
    assert c.cache_dir is None
    assert c.log_level is LogLevel.INFO
    assert c.fake_token_delay == 0.0
    assert c.backend is not Backend.FAKE  # the fake backend is never a default


def test_every_field_has_an_alias_in_the_table():
    assert {name for name, _, _ in VALID.values()} == field_names()


def test_config_is_frozen_and_keyword_only():
    c = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.threads = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        Config("model")  # type: ignore[misc]


@pytest.mark.parametrize("raw", [None, {}])
def test_empty_settings_give_defaults_without_errors(raw):
    parsed = parse_settings(raw)
    assert isinstance(parsed, ParsedSettings)
    assert parsed.config == DEFAULTS
    assert parsed.errors == []


def test_none_settings_keep_the_base():
    base = Config(threads=3, model="m")
    parsed = parse_settings(None, base)
    assert parsed.config == base
    assert parsed.errors == []


# ---------------------------------------------------------------------------------------------
# Aliases and valid values


@pytest.mark.parametrize("key", sorted(VALID))
def test_camel_case_alias_applies(key):
    name, raw, expected = VALID[key]
    parsed = parse_settings({key: raw})
    assert parsed.errors == []
    assert getattr(parsed.config, name) == expected
    assert getattr(parsed.config, name) != getattr(DEFAULTS, name)
    # Nothing else changed.
    assert dataclasses.replace(parsed.config, **{name: getattr(DEFAULTS, name)}) == DEFAULTS


@pytest.mark.parametrize("key", sorted(VALID))
def test_snake_case_field_name_also_applies(key):
    name, raw, expected = VALID[key]
    parsed = parse_settings({name: raw})
    assert parsed.errors == []
    assert getattr(parsed.config, name) == expected


def test_all_valid_values_at_once():
    parsed = parse_settings({k: raw for k, (_, raw, _) in VALID.items()})
    assert parsed.errors == []
    for name, _, expected in VALID.values():
        assert getattr(parsed.config, name) == expected


def test_nested_under_pingti_key():
    parsed = parse_settings({"pingti": {"contextTokens": 1024, "backend": "fake"},
                             "editor.tabSize": 4, "otherExtension": {"x": 1}})
    assert parsed.errors == []  # sibling sections of other extensions are not "unknown pingti"
    assert parsed.config.context_tokens == 1024
    assert parsed.config.backend is Backend.FAKE
    assert parsed.config.model == DEFAULTS.model


def test_nested_invalid_value_is_reported():
    parsed = parse_settings({"pingti": {"threads": "many"}})
    assert parsed.config.threads == 0
    assert len(parsed.errors) == 1
    assert "'threads'" in parsed.errors[0]


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("backend", "TRANSFORMERS", Backend.TRANSFORMERS),
        ("device", "  CPU ", Device.CPU),
        ("quantization", "Int8", Quantization.INT8),
        ("quantization", "none", Quantization.NONE),
        ("logLevel", "Warning", LogLevel.WARNING),
        ("model", "  /m.gguf  ", "/m.gguf"),
        ("cacheDir", " /c ", "/c"),
        ("cacheDir", None, None),
    ],
)
def test_values_are_normalised(key, raw, expected):
    parsed = parse_settings({key: raw}, Config(cache_dir="/previous"))
    assert parsed.errors == []
    assert getattr(parsed.config, VALID[key][0]) == expected


def test_int_field_accepts_integral_float_and_stores_an_int():
    c = parse_settings({"contextTokens": 1024.0}).config
    assert c.context_tokens == 1024
    assert type(c.context_tokens) is int


def test_float_field_accepts_int_and_stores_a_float():
    c = parse_settings({"temperature": 1, "topP": 1}).config
    assert c.temperature == 1.0 and type(c.temperature) is float
    assert c.top_p == 1.0 and type(c.top_p) is float


@pytest.mark.parametrize(
    ("key", "lo", "hi"),
    [
        ("threads", 0, 256),
        ("contextTokens", 64, 32768),
        ("prefixShare", 0.1, 1.0),
        ("maxTokensSingleLine", 1, 1024),
        ("maxTokensMultiLine", 1, 4096),
        ("temperature", 0.0, 2.0),
        ("topP", 0.01, 1.0),
        ("seed", 0, 2**31 - 1),
        ("cacheEntries", 0, 100_000),
        ("fakeTokenDelay", 0.0, 10.0),
    ],
)
def test_range_bounds_are_inclusive(key, lo, hi):
    name = VALID[key][0]
    for ok in (lo, hi):
        parsed = parse_settings({key: ok})
        assert parsed.errors == [], ok
        assert getattr(parsed.config, name) == ok
    step = 1 if isinstance(lo, int) else 0.001
    for bad in (lo - step, hi + step):
        parsed = parse_settings({key: bad})
        assert getattr(parsed.config, name) == getattr(DEFAULTS, name)
        assert len(parsed.errors) == 1
        assert repr(key) in parsed.errors[0]
        assert "between" in parsed.errors[0]


# ---------------------------------------------------------------------------------------------
# Invalid values: default + one clear message naming the setting

INVALID = [
    # (key, value, a fragment the message must contain)
    ("threads", "four", "integer"),
    ("threads", True, "integer"),  # bool is not an int here
    ("threads", False, "integer"),
    ("threads", 2.5, "integer"),
    ("threads", -1, "between"),
    ("threads", 257, "between"),
    ("threads", None, "integer"),
    ("threads", [4], "integer"),
    ("threads", float("inf"), "integer"),
    ("threads", float("nan"), "integer"),
    ("contextTokens", 10, "between"),
    ("contextTokens", "1024", "integer"),
    ("seed", 2**31, "between"),
    ("cacheEntries", {"n": 1}, "integer"),
    ("prefixShare", 0.0, "between"),
    ("prefixShare", True, "number"),
    ("prefixShare", float("nan"), "between"),
    ("temperature", "hot", "number"),
    ("temperature", -0.1, "between"),
    ("temperature", float("inf"), "between"),
    ("topP", 0, "between"),
    ("fakeTokenDelay", 11, "between"),
    ("backend", "pytorch", "expected one of"),
    ("backend", 1, "expected one of"),
    ("backend", None, "expected one of"),
    ("quantization", "q4", "expected one of"),
    ("device", "gpu", "expected one of"),
    ("device", True, "expected one of"),
    ("logLevel", "verbose", "expected one of"),
    ("model", "", "non-empty string"),
    ("model", "   ", "non-empty string"),
    ("model", None, "non-empty string"),
    ("model", 3, "non-empty string"),
    ("cacheDir", "", "non-empty string"),
    ("cacheDir", 5, "non-empty string"),
]


@pytest.mark.parametrize(("key", "value", "fragment"), INVALID)
def test_invalid_value_falls_back_to_default_with_one_message(key, value, fragment):
    name = VALID[key][0]
    parsed = parse_settings({key: value})
    assert getattr(parsed.config, name) == getattr(DEFAULTS, name)
    assert parsed.config == DEFAULTS
    assert len(parsed.errors) == 1
    msg = parsed.errors[0]
    assert repr(key) in msg
    assert fragment in msg
    assert "default" in msg
    default = getattr(DEFAULTS, name)
    shown = default.value if hasattr(default, "value") else default
    assert repr(shown) in msg


def test_enum_error_lists_the_valid_values():
    msg = parse_settings({"quantization": "q4"}).errors[0]
    for q in Quantization:
        assert q.value in msg


def test_invalid_value_falls_back_to_default_not_base():
    # Documented behaviour: "replaced by its default" (the message says so too).
    base = Config(threads=4, backend=Backend.TRANSFORMERS)
    parsed = parse_settings({"threads": "x", "backend": "nope"}, base)
    assert parsed.config.threads == 0
    assert parsed.config.backend is Backend.AUTO
    assert len(parsed.errors) == 2


def test_invalid_and_valid_values_mixed():
    parsed = parse_settings({"threads": "x", "contextTokens": 512, "temperature": 9, "seed": 7})
    assert parsed.config.threads == 0
    assert parsed.config.context_tokens == 512
    assert parsed.config.temperature == 0.0
    assert parsed.config.seed == 7
    assert len(parsed.errors) == 2
    assert any("'threads'" in e for e in parsed.errors)
    assert any("'temperature'" in e for e in parsed.errors)


def test_unknown_keys_are_reported_and_ignored():
    parsed = parse_settings({"contextTokenz": 5, "threads": 2, "ModelPath": "/x"})
    assert parsed.config == Config(threads=2)
    assert len(parsed.errors) == 2
    assert any("'contextTokenz'" in e and "Unknown" in e for e in parsed.errors)
    assert any("'ModelPath'" in e for e in parsed.errors)


@pytest.mark.parametrize("raw", [[1, 2], "threads=2", 5, True, 1.5, ("a",)])
def test_non_dict_settings_keep_base_with_one_error(raw):
    base = Config(threads=3)
    parsed = parse_settings(raw, base)
    assert parsed.config == base
    assert len(parsed.errors) == 1
    assert "must be an object" in parsed.errors[0]
    assert type(raw).__name__ in parsed.errors[0]


def test_nested_non_dict_pingti_section_is_not_silently_accepted():
    parsed = parse_settings({"pingti": "fast"})
    assert parsed.config == DEFAULTS
    assert len(parsed.errors) == 1
    assert "'pingti'" in parsed.errors[0]


def test_parse_does_not_mutate_input_or_base():
    raw = {"pingti": {"threads": 2}}
    base = Config(seed=5)
    parse_settings(raw, base)
    assert raw == {"pingti": {"threads": 2}}
    assert base == Config(seed=5)


# ---------------------------------------------------------------------------------------------
# Merging over a base


def test_later_parse_keeps_earlier_values_not_mentioned():
    first = parse_settings({"model": "/a.gguf", "threads": 2, "temperature": 0.3}).config
    second = parse_settings({"threads": 4}, first).config
    assert second.model == "/a.gguf"
    assert second.temperature == 0.3
    assert second.threads == 4
    third = parse_settings({"pingti": {"logLevel": "error"}}, second).config
    assert (third.model, third.threads, third.temperature) == ("/a.gguf", 4, 0.3)
    assert third.log_level is LogLevel.ERROR


def test_unknown_key_does_not_reset_base():
    base = Config(threads=6)
    parsed = parse_settings({"bogus": 1}, base)
    assert parsed.config == base


def test_explicit_none_cache_dir_clears_base_value():
    base = Config(cache_dir="/old")
    assert parse_settings({"cacheDir": None}, base).config.cache_dir is None
    assert parse_settings({}, base).config.cache_dir == "/old"


# ---------------------------------------------------------------------------------------------
# model_key

MODEL_FIELDS = {"model", "backend", "quantization", "device", "threads", "cache_dir",
                "fake_token_delay", "context_window", "kv_cache_tokens", "kv_cache_documents",
                "flash_attention",
                "backends", "draft_tokens", "draft_model"}


@pytest.mark.parametrize("key", sorted(VALID))
def test_model_key_changes_only_for_model_fields(key):
    name, raw, _ = VALID[key]
    changed = parse_settings({key: raw}).config
    assert changed != DEFAULTS
    if name in MODEL_FIELDS:
        assert changed.model_key() != DEFAULTS.model_key()
    else:
        assert changed.model_key() == DEFAULTS.model_key()


def test_model_key_is_hashable_and_equal_for_equal_configs():
    a = Config(model="/m", threads=2, temperature=0.5)
    b = Config(model="/m", threads=2, temperature=0.9, context_tokens=4096)
    assert a.model_key() == b.model_key()
    assert hash(a.model_key()) == hash(b.model_key())
    assert Config(model="/m").model_key() != Config(model="/n").model_key()


# ---------------------------------------------------------------------------------------------
# Environment

ENV_VARS = ["PINGTI_MODEL", "PINGTI_BACKEND", "PINGTI_QUANTIZATION", "PINGTI_DEVICE",
            "PINGTI_THREADS"]


@pytest.fixture
def clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_environment_empty_gives_defaults(clean_env):
    parsed = config_from_environment()
    assert parsed.config == DEFAULTS
    assert parsed.errors == []


def test_environment_values_apply(clean_env):
    clean_env.setenv("PINGTI_MODEL", "/models/x.gguf")
    clean_env.setenv("PINGTI_BACKEND", "fake")
    clean_env.setenv("PINGTI_QUANTIZATION", "INT8")
    clean_env.setenv("PINGTI_DEVICE", "cpu")
    clean_env.setenv("PINGTI_THREADS", "2")
    parsed = config_from_environment()
    assert parsed.errors == []
    assert parsed.config == Config(model="/models/x.gguf", backend=Backend.FAKE,
                                   quantization=Quantization.INT8, device=Device.CPU, threads=2)


def test_environment_empty_strings_are_ignored(clean_env):
    clean_env.setenv("PINGTI_MODEL", "")
    clean_env.setenv("PINGTI_THREADS", "")
    parsed = config_from_environment()
    assert parsed.config == DEFAULTS
    assert parsed.errors == []


@pytest.mark.parametrize(("var", "value", "key"), [
    ("PINGTI_THREADS", "lots", "'threads'"),
    ("PINGTI_THREADS", "2.5", "'threads'"),
    ("PINGTI_THREADS", "999", "'threads'"),
    ("PINGTI_BACKEND", "onnx", "'backend'"),
    ("PINGTI_DEVICE", "tpu", "'device'"),
    ("PINGTI_QUANTIZATION", "fp8", "'quantization'"),
])
def test_environment_invalid_values_report(clean_env, var, value, key):
    clean_env.setenv(var, value)
    parsed = config_from_environment()
    assert parsed.config == DEFAULTS
    assert len(parsed.errors) == 1
    assert key in parsed.errors[0]


def test_force_offline_sets_but_does_not_override(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.setenv(var, "placeholder")  # records the original for restoration
        monkeypatch.delenv(var)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    force_offline()
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "0"


# ---------------------------------------------------------------------------------------------
# Property tests


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=True, allow_infinity=True)))
def test_prop_threads_accepted_iff_integral_in_range(value):
    parsed = parse_settings({"threads": value})
    ok = (not (isinstance(value, float) and not math.isfinite(value))
          and value == int(value) and 0 <= value <= 256)
    if ok:
        assert parsed.errors == []
        assert parsed.config.threads == int(value)
    else:
        assert parsed.config.threads == 0
        assert len(parsed.errors) == 1 and "'threads'" in parsed.errors[0]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(VALID) + ["unknown", "x"]), _JSON, max_size=6))
@example({"threads": "x", "x": 1, "model": ""})  # the bad value 'x' is quoted in threads' message
def test_prop_arbitrary_json_never_raises_and_errors_match_rejections(raw):
    parsed = parse_settings(raw)
    assert isinstance(parsed.config, Config)
    # At most one message per key, each naming its key; unknown keys always get one.
    for key in raw:
        mentioned = [e for e in parsed.errors if f"setting {key!r}" in e]
        assert len(mentioned) <= 1
        if key in ("unknown", "x"):
            assert len(mentioned) == 1
    assert len(parsed.errors) <= len(raw)
    assert all(any(f"setting {k!r}" in e for k in raw) for e in parsed.errors)


@pytest.mark.parametrize("raw", [["python", "cobol"], "kotlin", [1], {"python": True}])
def test_constraint_languages_are_checked(raw):
    parsed = parse_settings({"constraintLanguages": raw})
    assert len(parsed.errors) == 1 and "constraintLanguages" in parsed.errors[0]
    assert parsed.config.constraint_languages == DEFAULTS.constraint_languages


def test_constraint_languages_accept_a_comma_separated_string():
    parsed = parse_settings({"constraintLanguages": " Python, python "})
    assert parsed.errors == [] and parsed.config.constraint_languages == ("python",)


def test_constraint_languages_take_lsp_ids_of_dialects():
    parsed = parse_settings({"constraintLanguages": "typescriptreact, go,javascriptreact"})
    assert parsed.errors == []
    assert parsed.config.constraint_languages == ("typescript", "go", "javascript")


# ---------------------------------------------------------------------------------------------
# backends: a list of engines; messages name the entry and key, never a value

GPU = {"type": "openai", "url": "http://gpu-box:8000/v1", "model": "qwen2.5-coder-1.5b",
       "apiKeyEnv": "GPU_KEY"}
SECRET = "sk-secret-123"
INTEGER_KEYS = [k for k, (_, jtype, _) in BACKEND_FIELDS.items() if jtype == "integer"]


def test_backends_valid_list():
    specs = _parse_backends([
        GPU,
        {"type": "LLAMA.CPP", "url": " https://cpu-box:8080 ", "name": "cpu", "timeoutMs": 100,
         "model": None},
        {"type": "local"},
    ])
    gpu, cpu, local = specs
    assert gpu == BackendSpec(type=EngineType.OPENAI, url="http://gpu-box:8000/v1",
                              model="qwen2.5-coder-1.5b", api_key_env="GPU_KEY")
    assert gpu.label == "openai@gpu-box:8000" and gpu.timeout_ms == DEFAULT_ENGINE_TIMEOUT_MS
    assert (cpu.type, cpu.url, cpu.label, cpu.timeout_ms, cpu.model) == (
        EngineType.LLAMA_CPP, "https://cpu-box:8080", "cpu", 100, "")
    assert local == BackendSpec(type=EngineType.LOCAL) and local.label == "local"
    assert _parse_backends([]) == ()
    parsed = parse_settings({"pingti": {"backends": [GPU, {"type": "local"}]}})
    assert parsed.errors == [] and parsed.config.backends == (gpu, local)


def test_backends_api_key_is_kept_but_never_in_a_repr(monkeypatch):
    (spec,) = _parse_backends([{**GPU, "apiKey": SECRET}])
    assert spec.key() == SECRET
    assert SECRET not in repr(spec) and SECRET not in repr(Config(backends=(spec,)))
    monkeypatch.setenv("GPU_KEY", "from-env")
    assert _parse_backends([GPU])[0].key() == "from-env"


@pytest.mark.parametrize(("value", "fragment"), [
    ({"type": "local"}, "expected a list of backend objects"),
    ("local", "expected a list of backend objects"),
    (["local"], "entry 1: expected an object"),
    ([{"type": "vllm", "url": "http://gpu-box:8000/v1"}], "entry 1: type must be one of"),
    ([{"url": "http://gpu-box:8000/v1"}], "entry 1: type must be one of"),
    ([{"type": 1}], "entry 1: type must be a string"),
    ([{"type": "local"}, {"type": "openai"}], "entry 2: url must be http:// or https://"),
    ([{"type": "openai", "url": "gpu-box:8000/v1"}], "url must be http:// or https://"),
    ([{"type": "openai", "url": "ftp://gpu-box/v1"}], "url must be http:// or https://"),
    ([{"type": "llama.cpp", "url": "http://"}], "url must be http:// or https://"),
    ([{"type": "openai", "url": 8000}], "url must be a string"),
    ([{"type": "local"}, {"type": "local", "name": "again"}], "entry 2: only one local backend"),
    ([GPU, {**GPU, "model": "other"}], "entry 2: two backends named 'openai@gpu-box:8000'"),
    ([{"type": "local", "apikey": "x", "URL": "y"}], "entry 1: unknown keys ['URL', 'apikey']"),
    ([{**GPU, "caBundle": "/no/such/ca.pem"}], "caBundle is not a file"),
])
def test_backends_invalid(value, fragment):
    with pytest.raises(ValueError) as info:
        _parse_backends(value)
    assert fragment in str(info.value)
    parsed = parse_settings({"backends": value})
    assert parsed.config.backends == () and len(parsed.errors) == 1
    assert "'backends'" in parsed.errors[0] and fragment in parsed.errors[0]


def test_backends_ca_bundle_must_be_a_file(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    (spec,) = _parse_backends([{**GPU, "url": "https://gpu-box:8443/v1", "caBundle": str(pem)}])
    assert spec.ca_bundle == str(pem)


@pytest.mark.parametrize("key", INTEGER_KEYS)
def test_backends_integer_ranges(key):
    field = BACKEND_FIELDS[key][0]
    for ok in (100, 600_000):
        assert getattr(_parse_backends([{"type": "local", key: ok}])[0], field) == ok
    for bad in (99, 600_001, 0, -1, 1.5, 3000.0, True, "3000"):
        with pytest.raises(ValueError, match=f"entry 1: {key} must be an integer between 100 "
                                             "and 600000"):
            _parse_backends([{"type": "local", key: bad}])


@pytest.mark.parametrize("item", [
    {"type": "openai", "url": "not a url", "apiKey": SECRET},
    {"type": "vllm", "url": "http://gpu-box:8000/v1", "apiKey": SECRET},  # unknown type
    {"type": "openai", "url": "http://gpu-box:8000/v1", "timeoutMs": 5, "apiKey": SECRET},
    {"type": "openai", "url": "http://gpu-box:8000/v1", "apiKeyEnvironment": SECRET},
    {"type": "local", "url": 5, "apiKey": SECRET},  # wrong type
    {"type": "local", "apiKey": [SECRET]},  # the key itself of the wrong type
])
def test_backends_messages_never_show_the_api_key(item):
    with pytest.raises(ValueError) as info:
        _parse_backends([item])
    assert SECRET not in str(info.value)
    parsed = parse_settings({"backends": [item]})
    assert len(parsed.errors) == 1 and parsed.config.backends == ()
    assert SECRET not in parsed.errors[0] and "(not shown)" in parsed.errors[0]
    assert "'backends'" in parsed.errors[0]
