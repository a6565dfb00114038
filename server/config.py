"""The one configuration object of the server, and how raw settings become it.

Settings arrive as JSON from ``initializationOptions`` and ``workspace/didChangeConfiguration``
(either flat, or nested under a ``"pingti"`` key). :func:`parse_settings` turns them into a frozen
:class:`Config`; every value that is of the wrong type or out of range is replaced by its default
and reported as a message, so a typo never stops the server.

Each setting is declared once, as a field of :class:`Config` made by :func:`setting`: its type
(the annotation), default, range, the name clients send, whether a change reloads the model, who
it is offered to and its user-facing description. Everything else is derived from that
declaration: the accepted keys, the checks, :meth:`Config.model_key` and :data:`SETTINGS`, from
which ``scripts/gen_settings.py`` writes the README's table and the editors' settings lists (a
test fails when those drift).

Environment variables are read here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.languages import Language, from_lsp_id


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


class FlashAttention(enum.Enum):
    """llama.cpp's flash-attention kernels (the llama.cpp backend only).

    AUTO is OFF, chosen for decoding, which every request pays while typing (the prompt is
    cached): on this project's 2-core CPU (BENCHMARKS.md, issue 22) pingti decodes 10–16% faster
    with it off at 466–1,513-token prompts (llama.cpp's own ``llama-bench``: 13–29%) but
    prefills 8–11% slower, so a cold prompt costs more. llama.cpp's own ``auto`` turns it on.
    """

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class SandboxMode(enum.Enum):
    """How generated tests are isolated (testgen/sandbox.py, SECURITY.md)."""

    AUTO = "auto"  # bubblewrap; refuse to run generated code without it
    BWRAP = "bwrap"
    NONE = "none"  # the user accepts running generated code without namespaces


class RegressionMode(enum.Enum):
    """Whether "Generate tests" writes regression tests: failing tests pinned to the value the
    code returns today (testgen/regression.py), which only a person can say is right."""

    ASK = "ask"  # ask each time (window/showMessageRequest); no answer means no
    ALWAYS = "always"
    NEVER = "never"  # not even looked for


class ConstraintMode(enum.Enum):
    """What completions are held to while the model writes them (grammar_constraints/)."""

    SYNTAX = "syntax"  # no token after which the code can no longer become valid
    OFF = "off"


# Languages with a syntax constraint (the constraintLanguages setting chooses among them):
# every language of server/languages.py, by name. LSP ids of their dialects are accepted too.
CONSTRAINT_LANGUAGES: tuple[str, ...] = tuple(lang.value for lang in Language)


class RerankMode(enum.Enum):
    """How the candidates of one request are ordered (server/rerank)."""

    OFF = "off"  # as decoded: the greedy (or first-seeded) candidate first
    LOGPROB = "logprob"  # mean token log-probability (free: the model computed it)
    FULL = "full"  # log-probability, the file's own examples run in the sandbox, embeddings


class CandidatesWhen(enum.Enum):
    """Which requests get several candidates (each extra one costs decoding time)."""

    AUTO = "auto"  # explicit requests; every request when the model runs on a GPU
    INVOKED = "invoked"  # explicit requests only (trigger kind Invoked); typing stays single
    ALWAYS = "always"  # every request, automatic ones while typing too


class PrefetchMode(enum.Enum):
    """Whether the model reads a file ahead while the user does (server/batching.py)."""

    ON = "on"  # prompts of opened/focused files are evaluated in idle time
    OFF = "off"  # the first request in a file evaluates its prompt itself


class RepoContextMode(enum.Enum):
    """Which code of the project besides the cursor's file the prompt may show
    (server/repo_context.py)."""

    OFF = "off"
    OPEN = "open"  # the other documents open in the editor
    WORKSPACE = "workspace"  # and the workspace folders' files on disk


class EngineType(enum.Enum):
    """Where one entry of the ``backends`` list generates (server/remote.py, server/failover.py)."""

    OPENAI = "openai"  # an OpenAI-compatible /v1/completions (vLLM, TGI, llama.cpp, Ollama)
    LLAMA_CPP = "llama.cpp"  # llama.cpp's own server: /infill
    LOCAL = "local"  # the model of the ``model`` setting, in this process


# Per-backend defaults (docs in BACKEND_FIELDS).
DEFAULT_ENGINE_TIMEOUT_MS = 3000
DEFAULT_ENGINE_DEADLINE_MS = 20_000


@dataclass(frozen=True)
class BackendSpec:
    """One entry of the ``backends`` setting. ``api_key`` never appears in a repr, a log or an
    error message (``repr=False``; errors name the field, never its value)."""

    type: EngineType
    url: str = ""  # the engine's base URL: http(s)://host:port/v1 (openai), http(s)://host:port
    model: str = ""  # the engine's model name ('' = the first of /v1/models)
    name: str = ""  # shown in status and metrics ('' = derived from type and host)
    api_key: str = field(default="", repr=False)
    api_key_env: str = ""  # the environment variable holding the API key
    ca_bundle: str = ""  # a PEM file of CAs for https:// ('' = the system's)
    timeout_ms: int = DEFAULT_ENGINE_TIMEOUT_MS  # to the first byte, and between bytes
    deadline_ms: int = DEFAULT_ENGINE_DEADLINE_MS  # the whole answer (a stream that trickles)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.type is EngineType.LOCAL:
            return "local"
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)  # host and port only: never a user:password@ in the URL
        return f"{self.type.value}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def key(self) -> str:
        """The API key: from ``api_key``, else the environment variable ``api_key_env``."""
        if self.api_key:
            return self.api_key
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


# The keys of one ``backends`` entry as clients send them → (field, JSON type, description).
# The README and the VS Code schema are written from this (scripts/gen_settings.py).
BACKEND_FIELDS: dict[str, tuple[str, str, str]] = {
    "type": ("type", "string", "`openai` (OpenAI-compatible `/v1/completions`: vLLM, TGI, "
             "llama.cpp server, Ollama), `llama.cpp` (llama.cpp server's `/infill`) or `local` "
             "(the `model` setting, in-process)"),
    "url": ("url", "string", "the engine's base URL, e.g. `http://gpu-box:8000/v1` (openai) or "
            "`http://gpu-box:8080` (llama.cpp)"),
    "model": ("model", "string", "the model name the engine serves (default: the first it "
              "lists)"),
    "name": ("name", "string", "a name for status and metrics"),
    "apiKey": ("api_key", "string", "API key (prefer `apiKeyEnv`)"),
    "apiKeyEnv": ("api_key_env", "string", "environment variable holding the API key"),
    "caBundle": ("ca_bundle", "string", "PEM file of certificate authorities for `https://`"),
    "timeoutMs": ("timeout_ms", "integer", "most time (ms) to the first byte and between bytes "
                  "before failing over (default 3000)"),
    "deadlineMs": ("deadline_ms", "integer", "most time (ms) for a whole answer before failing "
                   "over (default 20000)"),
}


def _parse_backends(value: Any) -> tuple[BackendSpec, ...]:
    """The ``backends`` list. Messages name the entry and field, never a value (a key may be in
    it)."""
    from urllib.parse import urlsplit

    if not isinstance(value, list):
        raise ValueError("expected a list of backend objects")
    specs: list[BackendSpec] = []
    for i, item in enumerate(value):
        where = f"entry {i + 1}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected an object with a \"type\"")
        unknown = sorted(k for k in item if k not in BACKEND_FIELDS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} (known: {sorted(BACKEND_FIELDS)})")
        kwargs: dict[str, Any] = {}
        for key, (fname, jtype, _) in BACKEND_FIELDS.items():
            if key not in item or item[key] is None:
                continue
            raw = item[key]
            if jtype == "integer":
                if isinstance(raw, bool) or not isinstance(raw, int) or not 100 <= raw <= 600_000:
                    raise ValueError(f"{where}: {key} must be an integer between 100 and 600000")
            elif not isinstance(raw, str):
                raise ValueError(f"{where}: {key} must be a string")
            kwargs[fname] = raw.strip() if isinstance(raw, str) else raw
        try:
            kwargs["type"] = EngineType(str(kwargs.get("type", "")).lower())
        except ValueError:
            raise ValueError(f"{where}: type must be one of "
                             f"{[t.value for t in EngineType]}") from None
        spec = BackendSpec(**kwargs)
        if spec.type is EngineType.LOCAL:
            if any(s.type is EngineType.LOCAL for s in specs):
                raise ValueError(f"{where}: only one local backend")
        else:
            parts = urlsplit(spec.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{where}: url must be http:// or https:// with a host")
            if spec.ca_bundle and not os.path.isfile(os.path.expanduser(spec.ca_bundle)):
                raise ValueError(f"{where}: caBundle is not a file")
        if spec.label in {s.label for s in specs}:
            raise ValueError(f"{where}: two backends named {spec.label!r} (give one a name)")
        specs.append(spec)
    return tuple(specs)


class LogLevel(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


class Audience(enum.Enum):
    """Whom a setting is offered to, that is where scripts/gen_settings.py lists it."""

    # The README, Neovim's list and VS Code's settings editor.
    EDITORS = "editors"
    # The README and Neovim's list. Not in VS Code's settings editor: the extension sends every
    # setting it shows on each change, so each one there is a setting users would tune.
    EXPERTS = "experts"
    # The test-suite's own knobs: listed nowhere.
    TESTS = "tests"


# A parser for a field whose annotation alone does not say how to read it: raw JSON → value,
# or ValueError with the reason.
Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class _Declared:
    """What :func:`setting` stores in a field's metadata."""

    doc: str
    range: tuple[float, float] | None
    reload: bool
    client_name: str | None
    aliases: tuple[str, ...]
    audience: Audience
    parse: Parser | None
    type_doc: str | None
    choices: tuple[str, ...]
    secret: bool


_META_KEY = "pingti.setting"


def setting(default: Any, *, doc: str, range: tuple[float, float] | None = None,
            reload: bool = False, client_name: str | None = None, aliases: Sequence[str] = (),
            audience: Audience = Audience.EXPERTS, parse: Parser | None = None,
            type_doc: str | None = None, choices: Sequence[str] = (),
            secret: bool = False) -> Any:
    """Declare a :class:`Config` field as a setting.

    ``range`` is inclusive. ``reload``: a change needs the model loaded again. ``client_name``
    overrides the camelCase form of the field name; ``aliases`` are further keys accepted. ``doc``
    is Markdown, one or two sentences, for the README and the editors. ``parse`` (with
    ``type_doc`` and ``choices``) reads a field whose annotation alone does not say how.
    ``secret``: its value may hold a credential; messages never show it.
    """
    declared = _Declared(doc=doc, range=range, reload=reload, client_name=client_name,
                         aliases=tuple(aliases), audience=audience, parse=parse,
                         type_doc=type_doc, choices=tuple(choices), secret=secret)
    return field(default=default, metadata={_META_KEY: declared})


def _language_name(lsp_id: str) -> str:
    lang = from_lsp_id(lsp_id)
    return lang.value if lang is not None else lsp_id.strip().lower()


def _parse_languages(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ValueError("expected a list of language ids")
    langs = tuple(dict.fromkeys(_language_name(v) for v in items if v.strip()))
    unknown = [lang for lang in langs if lang not in CONSTRAINT_LANGUAGES]
    if unknown:
        raise ValueError(f"no syntax constraint for {', '.join(unknown)} (supported: "
                         f"{', '.join(CONSTRAINT_LANGUAGES)})")
    return langs


def _parse_globs(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ValueError("expected a list of gitignore-style patterns")
    return tuple(v.strip() for v in items if v.strip())


@dataclass(frozen=True, kw_only=True)
class Config:
    # "default" is the packaged Qwen2.5-Coder-0.5B-Instruct; or a local .gguf file / HF folder.
    model: str = setting(
        "default", reload=True, audience=Audience.EDITORS,
        doc="`default`: the packaged Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, checksummed; on "
            "CUDA the 1.5B model when its extra is installed); `qwen2.5-coder-0.5b` / "
            "`qwen2.5-coder-1.5b`: either of them (the 1.5B needs the `model-1.5b` extra); or a "
            "local `.gguf` file or Hugging Face model folder (`~` is expanded; VS Code also "
            "expands `${workspaceFolder}`). Nothing is downloaded from a model hub.")
    backend: Backend = setting(
        Backend.AUTO, reload=True, audience=Audience.EDITORS,
        doc="Which inference backend runs the model. `auto`: transformers (bitsandbytes 4-bit) on "
            "CUDA, llama.cpp on a CPU; `llama.cpp` runs the GGUF file as it is, `transformers` "
            "de-quantizes it once into the cache (`fake` is model-free, for the test-suite only).")
    quantization: Quantization = setting(
        Quantization.AUTO, reload=True, audience=Audience.EDITORS,
        doc="How the transformers backend holds the weights (llama.cpp runs the GGUF file's own "
            "quantization). `auto`: NF4 4-bit weights with bf16/fp16 compute (W4A16) on CUDA, full "
            "precision on a CPU, which is faster there for single lines (BENCHMARKS.md).")
    device: Device = setting(
        Device.AUTO, reload=True, audience=Audience.EDITORS,
        doc="Where the model runs; `auto`: CUDA when torch sees a GPU, else the CPU.")
    # 0 = let torch pick (all cores). On 2 cores more threads than cores only adds contention.
    threads: int = setting(
        0, range=(0, 256), reload=True, audience=Audience.EDITORS,
        doc="CPU threads for the model; 0 = all cores.")
    flash_attention: FlashAttention = setting(
        FlashAttention.AUTO, reload=True,
        doc="Flash attention in llama.cpp. `auto`: off, which decodes 10–16% faster on the CPU "
            "measured but prefills a cold prompt 8–11% slower (BENCHMARKS.md); try `on` where "
            "`benchmarks/flash_attention.py` shows it faster.")
    # Prompt budget in tokens. Prefill dominates CPU latency (~80 tokens/s for the 0.5B model in
    # fp32 on 2 cores), so the default keeps a cold prompt to a few seconds.
    context_tokens: int = setting(
        768, range=(64, 32768), audience=Audience.EDITORS,
        doc="Prompt budget (text before and after the cursor) in tokens. Larger sees more of the "
            "file but is slower on a CPU.")
    # Longest sequence (prompt + generation) one request may use, in tokens; the prompt budget
    # shrinks to fit it. The memory of all sequences together is bounded by kv_cache_tokens.
    context_window: int = setting(
        2048, range=(256, 32768), reload=True,
        doc="Longest sequence (prompt + generation) of one request, in tokens; the prompt budget "
            "shrinks to fit it.")
    # The suffix is evaluated after the prefix (FIM order), so every keystroke re-evaluates it:
    # keep it short (and within the cursor's block) so a cached prefix makes typing cheap.
    suffix_tokens: int = setting(
        64, range=(0, 32768),
        doc="At most this many tokens of the text after the cursor (also cut at the end of the "
            "cursor's block).")
    # The prompt may only start at every n-th line of the file, so its beginning (and the KV
    # cache built on it) stays the same while the user types. 1 = any line.
    align_lines: int = setting(
        32, range=(1, 4096),
        doc="The prompt starts only at every n-th line, so its start (and the KV cache built on "
            "it) stays put while you type; 1 = any line.")
    # Share of the budget given to the text before the cursor; the rest (at most) to the suffix.
    prefix_share: float = setting(
        0.75, range=(0.1, 1.0),
        doc="Share of the prompt budget for the text before the cursor.")
    # A single line rarely needs more than ~40 tokens; a block body of a small function ~150.
    max_tokens_single_line: int = setting(
        48, range=(1, 1024), audience=Audience.EDITORS,
        doc="Most tokens generated when completing the current line.")
    max_tokens_multi_line: int = setting(
        160, range=(1, 4096), audience=Audience.EDITORS,
        doc="Most tokens generated when writing a block (e.g. a function body).")
    # 0 = greedy (deterministic, what benchmarks use).
    temperature: float = setting(
        0.0, range=(0.0, 2.0), audience=Audience.EDITORS,
        doc="Sampling temperature of the first (or only) candidate; 0 = greedy (deterministic). "
            "Extra candidates use `sampleTemperature`.")
    top_p: float = setting(
        0.95, range=(0.01, 1.0),
        doc="Nucleus sampling when `temperature` is above 0.")
    seed: int = setting(
        0, range=(0, 2**31 - 1),
        doc="Sampling seed; the candidates of a request use `seed`, `seed+1`, …")
    # The syntax constraint during decoding, and the languages it applies to.
    constraints: ConstraintMode = setting(
        ConstraintMode.SYNTAX, audience=Audience.EDITORS,
        doc="`syntax`: while the model writes, refuse tokens after which the code could no "
            "longer become valid, and cut the suggestion where it fits the text after the "
            "cursor; `off`: neither.")
    constraint_languages: tuple[str, ...] = setting(
        CONSTRAINT_LANGUAGES, parse=_parse_languages, type_doc="list of language ids",
        choices=CONSTRAINT_LANGUAGES,
        doc="Languages the syntax constraint applies to: a list or a comma-separated string of "
            "language ids (`javascriptreact` and `typescriptreact` count as their languages).")
    # Candidates per request: the first decoded at `temperature` (greedy by default), the others
    # sampled at `sample_temperature` with seeds seed+1, ...; they share the prompt's KV cache
    # and decode in one batch. Reranked (server/rerank) and returned best first.
    candidates: int = setting(
        4, range=(1, 16), audience=Audience.EDITORS,
        doc="Candidates per explicit request (see `candidatesWhen`): the greedy one plus sampled "
            "ones, reranked (`rerank`) and offered best first, for the editor to cycle through "
            "(VS Code: `Alt+]` / `Alt+[`); 1 = the single greedy answer.")
    candidates_when: CandidatesWhen = setting(
        CandidatesWhen.AUTO, audience=Audience.EDITORS,
        doc="Which requests get several candidates: `auto` = explicit requests on a CPU, every "
            "request on a GPU; `invoked` = explicit requests only (typing stays single and "
            "fast); `always` = every request.")
    # 0.6: of 0.4, 0.6 and 0.8, the best reranked first answer and pass@4/pass@8 on the even
    # HumanEval tasks (BENCHMARKS, issue 15), as Codex found for a handful of samples.
    sample_temperature: float = setting(
        0.6, range=(0.05, 2.0),
        doc="Sampling temperature of the extra candidates (the first one uses `temperature`).")
    rerank: RerankMode = setting(
        RerankMode.FULL, audience=Audience.EDITORS,
        doc="How candidates are ordered: `full` = log-probability, the file's own examples "
            "(doctests, asserts) run in the sandbox, and embedding agreement if `rerankEncoder` "
            "names an encoder; `logprob` = mean token log-probability and exact votes only; "
            "`off` = as decoded (greedy first).")
    rerank_encoder: str = setting(
        "none", audience=Audience.EDITORS,
        doc="Embedding agreement for `rerank: full` (off by default: it did not improve the "
            "held-out ranking): `none`, `minilm` (packaged all-MiniLM-L6-v2), `generator` (the "
            "code model's own hidden states), or the path of a local CodeBERT-family folder "
            "(CodeBERT, GraphCodeBERT, UniXcoder; transformers format).")
    rerank_timeout_ms: int = setting(
        2000, range=(100, 60_000),
        doc="Most time (ms) the file's examples may run for all candidates of one request; "
            "past it they are ignored and ranking goes on without them.")
    # Longest wait before running the model for an automatic request while the user types fast
    # (adaptive: a bit longer than their recent gap between keys; 0 turns debouncing off).
    debounce_ms: int = setting(
        150, range=(0, 5000), audience=Audience.EDITORS,
        doc="Longest wait (ms) after a keystroke before the model runs while you type fast "
            "(adaptive: a bit longer than your recent gap between keys; 0 = off).")
    # Prefetch: evaluate the prompt of the file the user opened or moved to while they read,
    # in idle time and in small chunks a real request preempts (server/batching.py).
    prefetch: PrefetchMode = setting(
        PrefetchMode.ON, audience=Audience.EDITORS,
        doc="`on`: when you open or move to a file (or to another part of it), pingti evaluates "
            "the prompt a suggestion there would use while the model is idle, so the first "
            "suggestion comes fast; `off`: the first request does it (saves CPU time).")
    # Completions kept by the request cache (identical requests, typed-through suggestions).
    cache_entries: int = setting(
        256, range=(0, 100_000),
        doc="Size of the cache of identical requests; 0 disables it (typing through the "
            "suggestion on screen still reuses it).")
    # Dynamic batching: up to this many sequences (requests from several documents, or the
    # candidates of one request) decode together, one token each per model step. 1 = one at a
    # time. On 2 cores 4 sequences step in ~1.7x the time of one (BENCHMARKS.md).
    max_batch_size: int = setting(
        4, range=(1, 64),
        doc="Dynamic batching: up to this many requests (from different documents, or the "
            "candidates of one request) decode together, one token each per model step; 1 = one "
            "at a time.")
    # When the model is idle, how long the first request waits for others to share its batch.
    # Requests that arrive while a batch is decoding join it at the next step without waiting.
    batch_timeout_ms: int = setting(
        5, range=(0, 1000),
        doc="When the model is idle, how long (ms) a request waits for others to share its batch; "
            "requests arriving during decoding join at the next step without waiting.")
    # KV cache bound in tokens, shared by all cached documents and running sequences (about
    # 12 KB a token for the default model: 8192 tokens is 96 MB). When it is full the least
    # recently used document's cached prompt is dropped.
    kv_cache_tokens: int = setting(
        8192, range=(256, 1_048_576), reload=True,
        doc="KV cache bound in tokens, shared by all cached documents and running requests (about "
            "12 KB a token for the default model); when it is full, the least recently used "
            "document's cached prompt is dropped.")
    # Documents whose prompt's KV cache is kept, so switching files does not mean a cold prefill
    # (llama.cpp: sequences of the shared cache; transformers: separate caches). Also bounds how
    # many sequences can decode at once.
    kv_cache_documents: int = setting(
        8, range=(1, 64), reload=True,
        doc="Documents whose prompt stays cached, so going back to a file is not a cold start; "
            "also the most requests that can decode at once.")
    # Overrides the XDG cache dir for assembled/converted models.
    cache_dir: str | None = setting(
        None, reload=True,
        doc="Where the assembled and converted model is cached; when unset, `$PINGTI_CACHE_DIR`, "
            "else `$XDG_CACHE_HOME/pingti`, else `~/.cache/pingti`.")
    log_level: LogLevel = setting(
        LogLevel.INFO, audience=Audience.EDITORS,
        doc="The server's log level (its log goes to stderr, which editors show as the pingti "
            "log).")
    # "Generate tests": isolation of the generated tests, the time a generation may take (a
    # second round only starts in the first half of it), and the length of each model answer.
    sandbox: SandboxMode = setting(
        SandboxMode.AUTO, audience=Audience.EDITORS,
        doc="How \"Generate tests\" isolates the model-written tests it runs. `auto`/`bwrap`: "
            "bubblewrap, and no run without it; `none`: only rlimits, Landlock, seccomp and the "
            "timeout, you accept the risk (SECURITY.md).")
    testgen_time_budget_s: int = setting(
        300, range=(10, 3600), audience=Audience.EDITORS,
        doc="Seconds one \"Generate tests\" may take (a second round only starts in its first "
            "half).")
    testgen_regression_tests: RegressionMode = setting(
        RegressionMode.ASK, audience=Audience.EDITORS,
        doc="Generated tests that failed only on a guessed expected value can be kept as "
            "regression tests pinned to what the code returns today: `ask` (each time), "
            "`always`, `never`. They lock in today's behaviour, right or wrong.")
    testgen_max_tokens: int = setting(
        768, range=(64, 4096),
        doc="Length limit of each model answer when writing tests, in tokens.")
    # Speculative decoding by prompt lookup (server/backends/decoding.py): a greedy sequence
    # whose last tokens occurred before gets what followed them there as a draft, verified in
    # one evaluation; the output is the same token for token. llama.cpp only.
    draft_tokens: int = setting(
        0, range=(0, 16), reload=True,
        doc="Speculative decoding (llama.cpp): up to this many tokens copied from earlier in the "
            "file (prompt lookup) are checked in one model step; the output stays the greedy one "
            "(but for near-ties that llama.cpp's batched kernels round differently). 0 = off.")
    # Speculative decoding with a draft model (server/backends/llamacpp_backend.py, ModelDrafter):
    # a smaller model of the same tokenizer proposes the drafts instead of prompt lookup.
    draft_model: str = setting(
        "", reload=True,
        doc="With `draftTokens` > 0 (llama.cpp): a smaller model of the same tokenizer that "
            "writes the drafts instead of prompt lookup, e.g. `default` (the 0.5B model) for "
            "`model: \"qwen2.5-coder-1.5b\"`; a packaged name or a local `.gguf` file. Empty: "
            "prompt lookup.")
    # Repository context (server/repo_context.py, server/workspace.py): code from the other
    # open documents or the workspace, chosen for the cursor, before the cursor's file.
    repo_context: RepoContextMode = setting(
        RepoContextMode.WORKSPACE, audience=Audience.EDITORS,
        doc="Code from the rest of the project in the prompt: `off`; `open`: the other open "
            "documents; `workspace`: also the workspace folders' files on disk (indexed in the "
            "background; `.gitignore`d, vendored, binary and secret files are never read). "
            "Definitions of the names used near the cursor first, then BM25 matches.")
    repo_context_tokens: int = setting(
        512, range=(0, 8192), audience=Audience.EDITORS,
        doc="Token budget of the repository context (on top of `contextTokens`); it stays in the "
            "KV cache while typing, but a cold prompt costs its prefill.")
    repo_recent_edits: int = setting(
        16, range=(0, 256),
        doc="Repository context also ranks the code around the last this many places edited in "
            "open documents (most recent first; edits within a few lines count once), as "
            "llama.vim's ring of recent chunks; 0: not.")
    repo_max_files: int = setting(
        5000, range=(1, 1_000_000),
        doc="Most workspace files indexed for repository context (the first found, in path "
            "order); the rest are left out with a warning in the log.")
    repo_max_file_bytes: int = setting(
        262_144, range=(1024, 64 << 20),
        doc="Workspace files larger than this are not indexed (generated or minified code).")
    repo_exclude: tuple[str, ...] = setting(
        (), parse=_parse_globs, type_doc="list of gitignore-style patterns",
        doc="More files never to read for repository context (gitignore syntax, relative to the "
            "workspace folder), on top of `.gitignore` and the built-in denylist of secrets "
            "(`.env` files, keys, certificates, credentials).")
    # Fake backend only: seconds per generated token, so tests can observe cancellation.
    fake_token_delay: float = setting(
        0.0, range=(0.0, 10.0), reload=True, audience=Audience.TESTS,
        doc="Fake backend only: seconds per generated token.")

    # Where generation runs: an ordered list of engines, the first that is up serving; a
    # request that fails on one is retried once on the next (server/failover.py).
    backends: tuple[BackendSpec, ...] = setting(
        (), reload=True, audience=Audience.EDITORS, parse=_parse_backends, secret=True,
        type_doc="list of backend objects",
        doc="Where completions are generated, in order of preference, e.g. "
            "`[{\"type\": \"openai\", \"url\": \"http://gpu-box:8000/v1\"}, {\"type\": "
            "\"local\"}]`: a failed request is retried once on the next, a failing backend is "
            "skipped until its health check passes. Empty: the `model` setting, in-process.")

    def model_key(self) -> tuple[Any, ...]:
        """The fields whose change requires loading the model again (declared ``reload=True``)."""
        return tuple(getattr(self, s.name) for s in _RELOADING)


def _camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class Setting:
    """One setting as clients see it: :data:`SETTINGS` describes them all."""

    name: str  # the Config field (also accepted as a key)
    client_name: str  # the key clients send, camelCase as VS Code settings are spelled
    aliases: tuple[str, ...]  # further keys accepted
    type: Any  # the field's annotation, resolved
    type_doc: str  # the type in words: "integer", "number", "string", "string or null", ...
    default: Any  # as on Config (an Enum member for enums)
    range: tuple[float, float] | None  # inclusive
    choices: tuple[str, ...]  # the values an enum (or a list's items) may take
    reload: bool  # a change loads the model again
    audience: Audience
    doc: str  # Markdown, one or two sentences
    secret: bool = False  # the value may hold a credential: never echoed
    _parse: Parser | None = field(default=None, repr=False, compare=False)

    @property
    def client_default(self) -> Any:
        """The default as JSON: what a client would send."""
        return _to_json(self.default)

    def parse(self, value: Any) -> Any:
        """One raw JSON value as this setting's value, or ValueError with the reason."""
        if self._parse is not None:
            return self._parse(value)
        ftype = self.type
        if isinstance(ftype, type) and issubclass(ftype, enum.Enum):
            if not isinstance(value, str):
                raise ValueError(f"expected one of {[m.value for m in ftype]}")
            try:
                return ftype(value.strip().lower())
            except ValueError:
                raise ValueError(f"expected one of {[m.value for m in ftype]}") from None
        if ftype is int:
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or (isinstance(value, float) and not value.is_integer())):  # also inf/nan
                raise ValueError("expected an integer")
            value = int(value)
        elif ftype is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("expected a number")
            value = float(value)
        else:  # str or str | None, as _type_doc checked
            if value is None and ftype is not str:
                return None
            if not isinstance(value, str) or not value.strip():
                raise ValueError("expected a non-empty string")
            value = value.strip()
        if self.range is not None:
            lo, hi = self.range
            if not lo <= value <= hi:  # NaN fails this too
                raise ValueError(f"expected a value between {lo} and {hi}")
        return value


def _to_json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def _type_doc(name: str, ftype: Any) -> str:
    """The type in words, for the types :meth:`Setting.parse` reads without a parser."""
    if isinstance(ftype, type) and issubclass(ftype, enum.Enum):
        return "string"
    if ftype in (int, float, str):
        return {int: "integer", float: "number", str: "string"}[ftype]
    if ftype == str | None:
        return "string or null"
    raise TypeError(f"Config.{name}: no reader for {ftype!r}; declare it with setting(parse=...)")


def _collect() -> tuple[Setting, ...]:
    hints = typing.get_type_hints(Config)
    out = []
    for f in dataclasses.fields(Config):
        declared = f.metadata.get(_META_KEY)
        if not isinstance(declared, _Declared):
            raise TypeError(f"Config.{f.name} is not declared with setting()")
        ftype = hints[f.name]
        if declared.parse is not None and declared.type_doc is None:
            raise TypeError(f"Config.{f.name}: a setting with parse= needs type_doc= too")
        choices = declared.choices
        if not choices and isinstance(ftype, type) and issubclass(ftype, enum.Enum):
            choices = tuple(m.value for m in ftype)
        out.append(Setting(
            name=f.name, client_name=declared.client_name or _camel_case(f.name),
            aliases=declared.aliases, type=ftype,
            type_doc=declared.type_doc or _type_doc(f.name, ftype), default=f.default,
            range=declared.range, choices=choices, reload=declared.reload,
            audience=declared.audience, doc=declared.doc, secret=declared.secret,
            _parse=declared.parse))
    return tuple(out)


# Every setting, in the order of Config's fields.
SETTINGS: tuple[Setting, ...] = _collect()
_RELOADING = tuple(s for s in SETTINGS if s.reload)


def _keys() -> dict[str, Setting]:
    """Every key a client may send (field name, client name, aliases) → its setting."""
    keys: dict[str, Setting] = {}
    for s in SETTINGS:
        for key in dict.fromkeys((s.name, s.client_name, *s.aliases)):
            if key in keys or key == "pingti":
                raise ValueError(f"setting key {key!r} of Config.{s.name} is taken")
            keys[key] = s
    return keys


_BY_KEY = _keys()
# Derived views (tests/editors/test_vscode.py reads them): client names and aliases → field,
# ranges and types by field.
_ALIASES: dict[str, str] = {key: s.name for s in SETTINGS for key in (s.client_name, *s.aliases)}
_RANGES: dict[str, tuple[float, float]] = {s.name: s.range for s in SETTINGS if s.range}
_FIELD_TYPES: dict[str, Any] = {s.name: s.type for s in SETTINGS}


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
        s = _BY_KEY.get(key)
        if s is None:
            errors.append(f"Unknown pingti setting {key!r} ignored.")
            continue
        try:
            updates[s.name] = s.parse(value)
        except ValueError as exc:
            shown = "(not shown)" if s.secret else repr(value)
            errors.append(
                f"Invalid value {shown} for pingti setting {key!r}: {exc}; "
                f"using the default {_shown(s.default)!r}."
            )
            updates[s.name] = s.default
    return ParsedSettings(dataclasses.replace(base, **updates), errors)


def _shown(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


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
