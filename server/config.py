"""The one configuration object of the server, and how raw settings become it.

Settings arrive as JSON from ``initializationOptions`` and ``workspace/didChangeConfiguration``
(either flat, or nested under a ``"pingti"`` key). :func:`parse_settings` turns them into a frozen
:class:`Config`; every value that is of the wrong type or out of range is replaced by its default
and reported as a message, so a typo never stops the server.

Environment variables are read here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Backend(enum.Enum):
    AUTO = "auto"  # transformers on CUDA, llama.cpp on a CPU
    TRANSFORMERS = "transformers"
    LLAMA_CPP = "llama.cpp"
    # Deterministic, model-free backend for the test-suite only; never a default.
    FAKE = "fake"


class Quantization(enum.Enum):
    """How the weights are held in memory.

    AUTO is NF4 (W4A16) on CUDA and full precision on a CPU. On this project's 2-core CPU
    (BENCHMARKS.md) NF4 decodes 1.6x faster than fp32 but prefills 1.8x slower, starts 2.5x
    slower and peaks higher in RSS, so the common single-line request is slower with it; int8 is
    slower than fp32 at everything.
    """

    AUTO = "auto"
    NONE = "none"  # fp32 on CPU, fp16/bf16 on CUDA
    NF4 = "nf4"  # bitsandbytes 4-bit NormalFloat, fp16/bf16 compute (W4A16)
    INT8 = "int8"  # bitsandbytes LLM.int8()


class Device(enum.Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class SandboxMode(enum.Enum):
    """How generated tests are isolated (testgen/sandbox.py, SECURITY.md)."""

    AUTO = "auto"  # bubblewrap; refuse to run generated code without it
    BWRAP = "bwrap"
    NONE = "none"  # the user accepts running generated code without namespaces


class ConstraintMode(enum.Enum):
    """What completions are held to while the model writes them (grammar_constraints/)."""

    SYNTAX = "syntax"  # no token after which the code can no longer become valid
    OFF = "off"


# Languages with a syntax constraint (the constraintLanguages setting chooses among them; the
# names of grammar_constraints.languages.SUPPORTED). LSP ids of their dialects are accepted too.
CONSTRAINT_LANGUAGES = ("python", "javascript", "typescript", "go", "rust", "java", "c", "cpp")
_LANGUAGE_ALIASES = {"javascriptreact": "javascript", "typescriptreact": "typescript"}


class LogLevel(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


@dataclass(frozen=True, kw_only=True)
class Config:
    # "default" is the packaged Qwen2.5-Coder-0.5B-Instruct; or a local .gguf file / HF folder.
    model: str = "default"
    backend: Backend = Backend.AUTO
    quantization: Quantization = Quantization.AUTO
    device: Device = Device.AUTO
    # 0 = let torch pick (all cores). On 2 cores more threads than cores only adds contention.
    threads: int = 0
    # Prompt budget in tokens. Prefill dominates CPU latency (~80 tokens/s for the 0.5B model in
    # fp32 on 2 cores), so the default keeps a cold prompt to a few seconds.
    context_tokens: int = 768
    # Longest sequence (prompt + generation) one request may use, in tokens; the prompt budget
    # shrinks to fit it. The memory of all sequences together is bounded by kv_cache_tokens.
    context_window: int = 2048
    # The suffix is evaluated after the prefix (FIM order), so every keystroke re-evaluates it:
    # keep it short (and within the cursor's block) so a cached prefix makes typing cheap.
    suffix_tokens: int = 64
    # The prompt may only start at every n-th line of the file, so its beginning (and the KV
    # cache built on it) stays the same while the user types. 1 = any line.
    align_lines: int = 32
    # Share of the budget given to the text before the cursor; the rest (at most) to the suffix.
    prefix_share: float = 0.75
    # A single line rarely needs more than ~40 tokens; a block body of a small function ~150.
    max_tokens_single_line: int = 48
    max_tokens_multi_line: int = 160
    # 0 = greedy (deterministic, what benchmarks use).
    temperature: float = 0.0
    top_p: float = 0.95
    seed: int = 0
    # The syntax constraint during decoding, and the languages it applies to.
    constraints: ConstraintMode = ConstraintMode.SYNTAX
    constraint_languages: tuple[str, ...] = CONSTRAINT_LANGUAGES
    # Suggestions per request (inline completions the editor can cycle through). Each extra one
    # is sampled with the next seed and shares the prompt's KV cache; with temperature 0 they
    # would all be the same, so greedy decoding always answers with one.
    candidates: int = 1
    # Longest wait before running the model for an automatic request while the user types fast
    # (adaptive: a bit longer than their recent gap between keys; 0 turns debouncing off).
    debounce_ms: int = 150
    # Completions kept by the request cache (identical requests, typed-through suggestions).
    cache_entries: int = 256
    # Dynamic batching: up to this many sequences (requests from several documents, or the
    # candidates of one request) decode together, one token each per model step. 1 = one at a
    # time. On 2 cores 4 sequences step in ~1.7x the time of one (BENCHMARKS.md).
    max_batch_size: int = 4
    # When the model is idle, how long the first request waits for others to share its batch.
    # Requests that arrive while a batch is decoding join it at the next step without waiting.
    batch_timeout_ms: int = 5
    # KV cache bound in tokens, shared by all cached documents and running sequences (about
    # 12 KB a token for the default model: 8192 tokens is 96 MB). When it is full the least
    # recently used document's cached prompt is dropped.
    kv_cache_tokens: int = 8192
    # Documents whose prompt's KV cache is kept, so switching files does not mean a cold prefill
    # (llama.cpp: sequences of the shared cache; transformers: separate caches). Also bounds how
    # many sequences can decode at once.
    kv_cache_documents: int = 8
    # Overrides the XDG cache dir for assembled/converted models.
    cache_dir: str | None = None
    log_level: LogLevel = LogLevel.INFO
    # "Generate tests": isolation of the generated tests, the time a generation may take (a
    # second round only starts in the first half of it), and the length of each model answer.
    sandbox: SandboxMode = SandboxMode.AUTO
    testgen_time_budget_s: int = 300
    testgen_max_tokens: int = 768
    # Fake backend only: seconds per generated token, so tests can observe cancellation.
    fake_token_delay: float = 0.0

    def model_key(self) -> tuple[Any, ...]:
        """The fields whose change requires loading the model again."""
        return (self.model, self.backend, self.quantization, self.device, self.threads,
                self.cache_dir, self.fake_token_delay, self.context_window,
                self.kv_cache_tokens, self.kv_cache_documents)


# Setting names as clients send them (camelCase, as VS Code settings are spelled).
_ALIASES: dict[str, str] = {
    "model": "model",
    "backend": "backend",
    "quantization": "quantization",
    "device": "device",
    "threads": "threads",
    "contextTokens": "context_tokens",
    "contextWindow": "context_window",
    "suffixTokens": "suffix_tokens",
    "alignLines": "align_lines",
    "prefixShare": "prefix_share",
    "maxTokensSingleLine": "max_tokens_single_line",
    "maxTokensMultiLine": "max_tokens_multi_line",
    "temperature": "temperature",
    "topP": "top_p",
    "seed": "seed",
    "candidates": "candidates",
    "constraints": "constraints",
    "constraintLanguages": "constraint_languages",
    "cacheEntries": "cache_entries",
    "maxBatchSize": "max_batch_size",
    "batchTimeoutMs": "batch_timeout_ms",
    "kvCacheTokens": "kv_cache_tokens",
    "kvCacheDocuments": "kv_cache_documents",
    "debounceMs": "debounce_ms",
    "cacheDir": "cache_dir",
    "logLevel": "log_level",
    "sandbox": "sandbox",
    "testgenTimeBudgetS": "testgen_time_budget_s",
    "testgenMaxTokens": "testgen_max_tokens",
    "fakeTokenDelay": "fake_token_delay",
}

_RANGES: dict[str, tuple[float, float]] = {
    "threads": (0, 256),
    "context_tokens": (64, 32768),
    "context_window": (256, 32768),
    "suffix_tokens": (0, 32768),
    "align_lines": (1, 4096),
    "prefix_share": (0.1, 1.0),
    "max_tokens_single_line": (1, 1024),
    "max_tokens_multi_line": (1, 4096),
    "temperature": (0.0, 2.0),
    "top_p": (0.01, 1.0),
    "seed": (0, 2**31 - 1),
    "candidates": (1, 16),
    "cache_entries": (0, 100_000),
    "max_batch_size": (1, 64),
    "batch_timeout_ms": (0, 1000),
    "kv_cache_tokens": (256, 1_048_576),
    "kv_cache_documents": (1, 64),
    "testgen_time_budget_s": (10, 3600),
    "testgen_max_tokens": (64, 4096),
    "debounce_ms": (0, 5000),
    "fake_token_delay": (0.0, 10.0),
}


def _coerce(name: str, ftype: Any, value: Any) -> Any:
    """Convert one raw JSON value to the field's type, or raise ValueError with a reason."""
    if isinstance(ftype, type) and issubclass(ftype, enum.Enum):
        if not isinstance(value, str):
            raise ValueError(f"expected one of {[m.value for m in ftype]}")
        try:
            return ftype(value.strip().lower())
        except ValueError:
            raise ValueError(f"expected one of {[m.value for m in ftype]}") from None
    if ftype == "languages":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ValueError("expected a list of language ids")
        langs = tuple(dict.fromkeys(_LANGUAGE_ALIASES.get(v.strip().lower(), v.strip().lower())
                                    for v in items if v.strip()))
        unknown = [lang for lang in langs if lang not in CONSTRAINT_LANGUAGES]
        if unknown:
            raise ValueError(f"no syntax constraint for {', '.join(unknown)} (supported: "
                             f"{', '.join(CONSTRAINT_LANGUAGES)})")
        return langs
    if ftype is int:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (isinstance(value, float) and not value.is_integer())):  # also inf/nan
            raise ValueError("expected an integer")
        value = int(value)
    elif ftype is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected a number")
        value = float(value)
    elif ftype in (str, "str | None"):
        if value is None and ftype == "str | None":
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a non-empty string")
        value = value.strip()
    if name in _RANGES:
        lo, hi = _RANGES[name]
        if not lo <= value <= hi:
            raise ValueError(f"expected a value between {lo} and {hi}")
    return value


_FIELD_TYPES: dict[str, Any] = {
    "model": str,
    "backend": Backend,
    "quantization": Quantization,
    "device": Device,
    "threads": int,
    "context_tokens": int,
    "context_window": int,
    "suffix_tokens": int,
    "align_lines": int,
    "prefix_share": float,
    "max_tokens_single_line": int,
    "max_tokens_multi_line": int,
    "temperature": float,
    "top_p": float,
    "seed": int,
    "candidates": int,
    "constraints": ConstraintMode,
    "constraint_languages": "languages",
    "cache_entries": int,
    "max_batch_size": int,
    "batch_timeout_ms": int,
    "kv_cache_tokens": int,
    "kv_cache_documents": int,
    "debounce_ms": int,
    "cache_dir": "str | None",
    "log_level": LogLevel,
    "sandbox": SandboxMode,
    "testgen_time_budget_s": int,
    "testgen_max_tokens": int,
    "fake_token_delay": float,
}
assert set(_FIELD_TYPES) == {f.name for f in dataclasses.fields(Config)}


@dataclass(frozen=True)
class ParsedSettings:
    config: Config
    # Human-readable problems, one per rejected or unknown setting.
    errors: list[str] = field(default_factory=list)


def parse_settings(raw: Any, base: Config | None = None) -> ParsedSettings:
    """Merge raw client settings over ``base`` (default: a fresh :class:`Config`).

    Unknown keys and invalid values are reported and ignored; the rest applies.
    """
    base = base or Config()
    errors: list[str] = []
    if raw is None:
        return ParsedSettings(base, errors)
    if not isinstance(raw, Mapping):
        return ParsedSettings(base, [f"pingti settings must be an object, got {type(raw).__name__}"])
    if isinstance(raw.get("pingti"), Mapping):
        raw = raw["pingti"]
    updates: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(key) or (key if key in _FIELD_TYPES else None)
        if name is None:
            errors.append(f"Unknown pingti setting {key!r} ignored.")
            continue
        try:
            updates[name] = _coerce(name, _FIELD_TYPES[name], value)
        except ValueError as exc:
            default = getattr(Config(), name)
            shown = default.value if isinstance(default, enum.Enum) else default
            errors.append(
                f"Invalid value {value!r} for pingti setting {key!r}: {exc}; "
                f"using the default {shown!r}."
            )
            updates[name] = default
    return ParsedSettings(dataclasses.replace(base, **updates), errors)


def config_from_environment() -> ParsedSettings:
    """Settings a user can give before any client does: ``PINGTI_MODEL`` etc."""
    raw: dict[str, Any] = {}
    for env, key in (("PINGTI_MODEL", "model"), ("PINGTI_BACKEND", "backend"),
                     ("PINGTI_QUANTIZATION", "quantization"), ("PINGTI_DEVICE", "device")):
        if os.environ.get(env):
            raw[key] = os.environ[env]
    if os.environ.get("PINGTI_THREADS"):
        try:
            raw["threads"] = int(os.environ["PINGTI_THREADS"])
        except ValueError:
            raw["threads"] = os.environ["PINGTI_THREADS"]
    return parse_settings(raw)


def force_offline() -> None:
    """Pingti never downloads from a model hub: make the HF libraries refuse to try."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
