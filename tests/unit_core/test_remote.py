"""The HTTP generators against scripted engines (httpx's MockTransport): what they send, how
they read the streams, and how every way an engine fails becomes one EngineError kind. Real
network faults (hangs, killed engines) are in tests/model/test_remote_engine.py."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest

from server.backends.base import CancelToken, FimTokens, FinishReason, GenerationRequest
from server.config import BackendSpec, EngineType, parse_settings
from server.generation import GeneratorCapabilities
from server.remote import EngineError, FailureKind, RemoteGenerator, is_loopback

SPECIAL = {1000: "<P>", 1001: "<S>", 1002: "<M>"}


class CharTokenizer:
    """One token per character; ids 1000-1002 are the FIM markers."""

    vocab_size = 2000

    def encode(self, text: str, special: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(SPECIAL.get(i, chr(i)) for i in ids)

    def token_id(self, token: str) -> int | None:
        return next((i for i, t in SPECIAL.items() if t == token), None)


CAPS = GeneratorCapabilities(True, True, FimTokens("<P>", "<S>", "<M>"), (1000, 1001, 1002),
                             frozenset(), frozenset({"<|endoftext|>"}), 4096)


def _sse(events: Sequence[Any], done: bool = True) -> bytes:
    body = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return (body + ("data: [DONE]\n\n" if done else "")).encode()


def _chunk(text: str, finish: str | None = None, lp: float = -0.5) -> dict[str, Any]:
    return {"choices": [{"text": text, "index": 0, "finish_reason": finish,
                         "logprobs": {"tokens": [text], "token_logprobs": [lp]}}]}


def _gen(handler: Callable[[httpx.Request], Any], **spec: Any) -> RemoteGenerator:
    kind = spec.pop("type", EngineType.OPENAI)
    url = spec.pop("url", "http://127.0.0.1:9/v1" if kind is EngineType.OPENAI
                   else "http://127.0.0.1:9")

    def sse_handler(request: httpx.Request) -> httpx.Response:
        response = handler(request)
        if response.status_code == 200 and "content-type" not in response.headers:
            response.headers["content-type"] = "text/event-stream"
        return response  # type: ignore[no-any-return]

    return RemoteGenerator(BackendSpec(kind, url=url, **spec), CharTokenizer(), CAPS, "m",
                           transport=httpx.MockTransport(sse_handler))


def _request(stop: Callable[[str], bool] | None = None, **kw: Any) -> GenerationRequest:
    ids = [1000, *CharTokenizer().encode("def f(x):\n    "), 1001,
           *CharTokenizer().encode("\n"), 1002]
    return GenerationRequest(ids, kw.pop("max_new", 16), stop=stop, **kw)


async def _one(gen: RemoteGenerator, req: GenerationRequest | None = None,
               cancel: CancelToken | None = None) -> Any:
    (res,) = await gen.generate([req or _request()], cancel or CancelToken())
    return res


async def test_openai_request_and_streamed_answer() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"path": request.url.path, "auth": request.headers.get("authorization"),
                     **json.loads(request.content)})
        return httpx.Response(200, content=_sse([_chunk("return"), _chunk(" x", "stop")]),
                              headers={"content-type": "text/event-stream"})

    gen = _gen(handler, model="qwen", api_key="sk-123")
    res = await _one(gen, _request(temperature=0.6, seed=7))
    assert res.text == "return x" and res.finish is FinishReason.EOS
    assert res.logprobs == [-0.5, -0.5] and res.token_ids == [ord(c) for c in "return x"]
    sent = seen[0]
    assert sent["path"] == "/v1/completions" and sent["auth"] == "Bearer sk-123"
    # The FIM markers are templated here and sent as text: no engine needs a suffix field.
    assert sent["prompt"] == "<P>def f(x):\n    <S>\n<M>" and "suffix" not in sent
    assert (sent["model"], sent["temperature"], sent["seed"], sent["stream"],
            sent["max_tokens"], sent["logprobs"]) == ("qwen", 0.6, 7, True, 16, 1)
    assert gen.capabilities.logits_processors is False and gen.capabilities.fim == CAPS.fim
    # Asked for only when ranking needs them (they slow some engines down many times).
    await _one(gen, _request(logprobs=False))
    assert "logprobs" not in seen[1]


async def test_length_finish_and_the_stop_rule_closes_the_stream() -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for i in range(50):
            pulled.append(i)
            yield _sse([_chunk(f"a{i}\n")], done=False)
        yield b"data: [DONE]\n\n"

    gen = _gen(lambda r: httpx.Response(200, content=body()))
    res = await _one(gen, _request(stop=lambda text: text.count("\n") >= 2))
    assert res.text == "a0\na1\n" and res.finish is FinishReason.STOP
    assert len(pulled) < 10  # the rest was never read: the stream was closed
    gen2 = _gen(lambda r: httpx.Response(200, content=_sse([_chunk("ab", "length")])))
    assert (await _one(gen2)).finish is FinishReason.LENGTH


@pytest.mark.parametrize(("status", "kind"), [
    (500, FailureKind.HTTP_5XX), (503, FailureKind.HTTP_5XX), (429, FailureKind.HTTP_429),
    (401, FailureKind.AUTH), (403, FailureKind.AUTH), (400, FailureKind.HTTP_4XX)])
async def test_http_errors_become_kinds_and_never_show_the_key(status: int,
                                                               kind: FailureKind) -> None:
    gen = _gen(lambda r: httpx.Response(status, json={"error": "key sk-secret-9 rejected"}),
               api_key="sk-secret-9")
    with pytest.raises(EngineError) as info:
        await _one(gen)
    assert info.value.kind is kind and "sk-secret-9" not in str(info.value)
    assert f"HTTP {status}" in str(info.value)


@pytest.mark.parametrize(("body", "kind"), [
    (b"data: {not json\n\n", FailureKind.MALFORMED),
    (b"data: [1, 2]\n\n", FailureKind.MALFORMED),
    (b'data: {"choices": []}\n\n', FailureKind.MALFORMED),
    (b'data: {"choices": [{"text": 5}]}\n\n', FailureKind.MALFORMED),
    (b'data: {"error": {"message": "model crashed"}}\n\n', FailureKind.HTTP_5XX),
    (_sse([_chunk("ret")], done=False), FailureKind.TRUNCATED),  # no finish, no [DONE]
    (_sse([_chunk("ret")], done=True), FailureKind.TRUNCATED),  # [DONE] but no finish
])
async def test_bad_streams(body: bytes, kind: FailureKind) -> None:
    gen = _gen(lambda r: httpx.Response(200, content=body))
    with pytest.raises(EngineError) as info:
        await _one(gen)
    assert info.value.kind is kind


async def test_refused_connection() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(EngineError) as info:
        await _one(_gen(handler))
    assert info.value.kind is FailureKind.CONNECT


async def test_deadline_and_cancellation() -> None:
    async def slow() -> AsyncIterator[bytes]:
        for _ in range(100):
            await asyncio.sleep(0.05)
            yield _sse([_chunk("a")], done=False)

    gen = _gen(lambda r: httpx.Response(200, content=slow()), deadline_ms=300)
    with pytest.raises(EngineError) as info:
        await _one(gen)
    assert info.value.kind is FailureKind.TIMEOUT and "300 ms" in str(info.value)

    gen = _gen(lambda r: httpx.Response(200, content=slow()))
    cancel = CancelToken()
    asyncio.get_running_loop().call_later(0.2, cancel.cancel, "superseded")
    res = await asyncio.wait_for(_one(gen, cancel=cancel), 2)
    assert res.finish is FinishReason.CANCELLED and 1 <= len(res.text) < 10


async def test_candidates_stream_concurrently_and_one_failure_fails_all() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seed = json.loads(request.content)["seed"]
        calls.append(seed)
        if seed == 2:
            return httpx.Response(503)
        return httpx.Response(200, content=_sse([_chunk(f"s{seed}", "stop")]))

    gen = _gen(handler)
    reqs = [_request(seed=s) for s in (0, 1)]
    out = await gen.generate(reqs, CancelToken())
    assert [r.text for r in out] == ["s0", "s1"]
    with pytest.raises(EngineError):
        await gen.generate([_request(seed=s) for s in (0, 1, 2)], CancelToken())
    assert sorted(calls) == [0, 0, 1, 1, 2]


async def test_llama_cpp_infill_body_and_stream() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, content=_sse([
            {"content": "return", "stop": False,
             "completion_probabilities": [{"token": "return", "logprob": -0.25}]},
            {"content": " x", "stop": False},
            {"content": "", "stop": True, "stop_type": "limit"}], done=False))

    gen = _gen(handler, type=EngineType.LLAMA_CPP)
    res = await _one(gen, _request(max_new=24))
    assert res.text == "return x" and res.finish is FinishReason.LENGTH
    assert res.logprobs == [-0.25]
    path, body = seen[0]
    assert path == "/infill" and body["input_prefix"] == "def f(x):\n    "
    assert body["input_suffix"] == "\n" and body["input_extra"] == [] and body["n_predict"] == 24
    assert body["n_probs"] == 1
    # A prompt without FIM markers goes to /completion as token ids.
    await _one(gen, GenerationRequest([104, 105], 4))
    assert seen[1][0] == "/completion" and seen[1][1]["prompt"] == [104, 105]
    # So does one with repository context before the FIM part (laid out here, token for
    # token, not handed to /infill's input_extra).
    with_context = [*CharTokenizer().encode("# a.py\nX = 1\n"), *_request().prompt_ids]
    await _one(gen, GenerationRequest(with_context, 4))
    assert seen[2][0] == "/completion" and seen[2][1]["prompt"] == with_context


async def test_health_checks_and_the_model_name() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "served-model"}]})
        return httpx.Response(200, content=_sse(
            [_chunk("ok", "stop")] if json.loads(request.content)["model"] == "served-model"
            else []))

    gen = _gen(handler)
    await gen.health()
    assert (await _one(gen)).text == "ok"  # the model the engine named
    wrong = _gen(handler, model="other")
    with pytest.raises(EngineError, match="serves"):
        await wrong.health()
    down = _gen(lambda r: httpx.Response(503))
    with pytest.raises(EngineError) as info:
        await down.health()
    assert info.value.kind is FailureKind.HTTP_5XX
    llama = _gen(lambda r: httpx.Response(200 if r.url.path == "/health" else 404),
                 type=EngineType.LLAMA_CPP)
    await llama.health()


def test_plain_http_to_another_host_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="server.remote"):
        _gen(lambda r: httpx.Response(200), url="http://gpu-box:8000/v1", api_key="k-77")
        _gen(lambda r: httpx.Response(200), url="http://127.0.0.1:8000/v1")
        _gen(lambda r: httpx.Response(200), url="https://gpu-box/v1")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "gpu-box" in warned[0] and "k-77" not in warned[0]
    assert is_loopback("http://localhost:1") and not is_loopback("http://10.0.0.2:1")


def test_api_key_from_the_environment_and_never_in_a_repr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_KEY", "sk-env-1")
    parsed = parse_settings({"backends": [
        {"type": "openai", "url": "https://gpu/v1", "apiKeyEnv": "TEAM_KEY"},
        {"type": "openai", "url": "https://gpu2/v1", "apiKey": "sk-inline-2"}]})
    assert not parsed.errors
    first, second = parsed.config.backends
    assert first.key() == "sk-env-1" and second.key() == "sk-inline-2"
    assert "sk-inline-2" not in repr(parsed.config)
