"""Generators that run on a serving engine over HTTP: vLLM, TGI, llama.cpp's server, Ollama.

pingti keeps everything but generation next to the editor (documents, context, prompt, syntax
check, reranking, tests); an engine only turns a prompt into text. Two protocols:

- ``openai``: ``POST {url}/completions`` (the OpenAI completions API that vLLM, TGI, llama.cpp's
  server, llama-cpp-python's server and Ollama's ``/v1`` offer). The fill-in-the-middle prompt
  is templated here, from the local tokenizer, and sent as text with the model's FIM markers:
  no engine needs a ``suffix`` field (vLLM has none).
- ``llama.cpp``: llama.cpp server's own ``POST {url}/infill`` (the prefix and suffix); a prompt
  that does not start with the FIM markers (one with repository context, laid out here in the
  model's repository format, or none at all) goes to ``/completion`` as token ids.

Both stream (server-sent events, through httpx-sse): the stop rule runs on the text as it
arrives and closes the stream when it says enough, and so does a cancelled request, so the
engine stops working for nobody. What an engine cannot do, the capabilities say: no logits
processors (the syntax constraint's token masks cannot run inside the engine; the finished
text is checked and cut instead, ``server/stages.py``).

Every failure is an :class:`EngineError` with a :class:`FailureKind` (refused connection, no
byte within ``timeoutMs``, no whole answer within ``deadlineMs``, HTTP 429/5xx/4xx, a rejected
key, malformed JSON, a stream cut short), which ``server/failover.py`` counts and fails over on.
Messages never hold the API key.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from server.backends.base import (
    CancelToken,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
)
from server.config import BackendSpec, EngineType
from server.generation import GeneratorCapabilities, Tokenizer

logger = logging.getLogger(__name__)

# How often a request's cancel token is looked at while a stream waits for bytes.
CANCEL_POLL_S = 0.02
# Error bodies are quoted in messages up to this many characters.
BODY_QUOTE = 200
# Health checks answer fast or count as down.
HEALTH_TIMEOUT_S = 2.0


class FailureKind(enum.Enum):
    CONNECT = "connect"  # refused, reset, DNS: nothing reached an engine
    TIMEOUT = "timeout"  # no byte within timeoutMs, or no whole answer within deadlineMs
    HTTP_429 = "http_429"  # the engine is overloaded and says so
    HTTP_5XX = "http_5xx"
    HTTP_4XX = "http_4xx"  # the engine refused this request (e.g. a prompt too long for it)
    AUTH = "auth"  # 401/403: the API key is missing or wrong
    MALFORMED = "malformed"  # not the JSON the protocol promises
    TRUNCATED = "truncated"  # the stream ended before the answer did


class EngineError(Exception):
    """A remote engine failed this request; ``kind`` says how (for failover and metrics)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class _Partial:
    """What a stream has delivered so far (kept when it is cancelled or stopped)."""

    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    first_s: float = 0.0  # seconds from sending to the first text
    finish: FinishReason | None = None


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


class RemoteGenerator:
    """One engine behind the :class:`server.generation.Generator` seam.

    ``tokenizer`` is the local model's (the same family as the engine's: the prompt is built
    and its FIM markers placed here); ``base`` holds the FIM markers, stop tokens and context
    window that go with it."""

    def __init__(self, spec: BackendSpec, tokenizer: Tokenizer, base: GeneratorCapabilities,
                 model_name: str, transport: Any = None) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        # No logits processors; log-probabilities come back with each chunk.
        self.capabilities = GeneratorCapabilities(
            logits_processors=False, logprobs=True, fim=base.fim, fim_ids=base.fim_ids,
            stop_ids=base.stop_ids, special_tokens=base.special_tokens,
            context_window=base.context_window, accelerated=False)
        self.info = ModelInfo(name=spec.model or model_name, backend=spec.type.value,
                              device=_origin(spec.url), quantization="remote", dtype="remote",
                              fim=base.fim, special_tokens=base.special_tokens,
                              context_window=base.context_window)
        self._model = spec.model
        self._transport = transport  # tests: an httpx transport
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight = 0
        if not is_loopback(spec.url) and urlsplit(spec.url).scheme == "http":
            logger.warning("backend %s: plain http:// to %s: prompts (your code) and the API "
                           "key cross the network unencrypted; use https://", spec.label,
                           urlsplit(spec.url).hostname)

    # --- HTTP plumbing ---------------------------------------------------------------------

    def _http(self) -> Any:
        """The connection pool, made on the event loop that uses it."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            headers = {"Accept": "text/event-stream"}
            if (key := self.spec.key()):
                headers["Authorization"] = f"Bearer {key}"
            timeout_s = self.spec.timeout_ms / 1000
            verify: Any = True
            if self.spec.ca_bundle:
                import os
                import ssl

                verify = ssl.create_default_context(
                    cafile=os.path.expanduser(self.spec.ca_bundle))
            self._client = httpx.AsyncClient(
                base_url=self.spec.url.rstrip("/"), headers=headers, verify=verify,
                timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
                transport=self._transport,
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=8))
            self._loop = loop
        return self._client

    def _scrub(self, text: str) -> str:
        key = self.spec.key()
        return text.replace(key, "***") if key else text

    def _error(self, exc: BaseException) -> EngineError:
        """An httpx exception as an EngineError (no key, no URL query in the message)."""
        import httpx

        if isinstance(exc, EngineError):
            return exc
        what = f"{self.spec.label}: "
        if isinstance(exc, httpx.TimeoutException):
            kind = FailureKind.CONNECT if isinstance(exc, httpx.ConnectTimeout) \
                else FailureKind.TIMEOUT
            return EngineError(kind, what + f"no answer within {self.spec.timeout_ms} ms "
                               f"({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError):
            return EngineError(FailureKind.CONNECT, what + f"cannot connect ({exc})")
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            return EngineError(FailureKind.TRUNCATED, what + f"the connection broke ({exc})")
        if isinstance(exc, httpx.HTTPError):
            return EngineError(FailureKind.CONNECT, what + f"{type(exc).__name__}: {exc}")
        return EngineError(FailureKind.MALFORMED, what + f"{type(exc).__name__}: {exc}")

    async def _status_error(self, response: Any) -> EngineError:
        code = response.status_code
        try:
            body = (await response.aread()).decode("utf-8", "replace")[:BODY_QUOTE]
        except Exception:  # noqa: BLE001 - the status says enough
            body = ""
        kind = (FailureKind.HTTP_429 if code == 429 else FailureKind.AUTH if code in (401, 403)
                else FailureKind.HTTP_5XX if code >= 500 else FailureKind.HTTP_4XX)
        hint = " (check apiKey / apiKeyEnv)" if kind is FailureKind.AUTH else ""
        return EngineError(kind, self._scrub(f"{self.spec.label}: HTTP {code}{hint} "
                                             f"{body.strip()}").strip())

    # --- the Generator seam ----------------------------------------------------------------

    async def generate(self, requests: Sequence[GenerationRequest], cancel: CancelToken
                       ) -> list[GenerationResult]:
        """One stream per request, concurrently (each candidate has its own seed and
        temperature, and its own stop rule); the first failure cancels the others."""
        tasks = [asyncio.ensure_future(self._one(r, cancel)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _one(self, request: GenerationRequest, cancel: CancelToken) -> GenerationResult:
        t0 = time.perf_counter()
        partial = _Partial()
        stream = asyncio.ensure_future(self._stream(request, partial, t0))
        watcher = asyncio.ensure_future(_cancelled(cancel))
        self._inflight += 1
        try:
            done, _ = await asyncio.wait({stream, watcher},
                                         timeout=self.spec.deadline_ms / 1000,
                                         return_when=asyncio.FIRST_COMPLETED)
            if stream in done:
                stream.result()  # raises its EngineError
            elif watcher in done:
                partial.finish = FinishReason.CANCELLED
            else:
                raise EngineError(FailureKind.TIMEOUT, f"{self.spec.label}: no whole answer "
                                  f"within {self.spec.deadline_ms} ms")
        finally:
            self._inflight -= 1
            for task in (stream, watcher):
                if not task.done():
                    task.cancel()
            await asyncio.gather(stream, watcher, return_exceptions=True)
        total = time.perf_counter() - t0
        ids = self.tokenizer.encode(partial.text) if partial.text else []
        first = partial.first_s or total
        return GenerationResult(ids, partial.text, partial.finish or FinishReason.EOS,
                                len(request.prompt_ids), first, max(0.0, total - first),
                                partial.logprobs[:len(ids)] if partial.logprobs else [],
                                {"ttft_s": first})

    async def _stream(self, request: GenerationRequest, partial: _Partial, t0: float) -> None:
        """Read the engine's stream into ``partial`` until it ends, the stop rule says enough
        or (cancelled by the caller) the connection closes."""
        path, body = self._body(request)
        try:
            # aclosing: leaving early (stop rule, cancel) closes the response right away.
            async with contextlib.aclosing(self._events(path, body)) as events:
                async for chunk in events:
                    piece, logprobs, finish = self._parse(chunk)
                    if piece:
                        if not partial.first_s:
                            partial.first_s = time.perf_counter() - t0
                        partial.text += piece
                        partial.logprobs.extend(logprobs)
                    if request.stop is not None and piece and request.stop(partial.text):
                        partial.finish = FinishReason.STOP
                        return  # leaving the stream closes it: the engine stops
                    if finish is not None:
                        partial.finish = finish
                        return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every way it fails becomes an EngineError
            raise self._error(exc) from exc
        raise EngineError(FailureKind.TRUNCATED,
                          f"{self.spec.label}: the stream ended before the answer did")

    async def _events(self, path: str, body: dict[str, Any]
                      ) -> AsyncGenerator[dict[str, Any], None]:
        from httpx_sse import aconnect_sse

        async with aconnect_sse(self._http(), "POST", path, json=body) as source:
            response = source.response
            if response.status_code != 200:
                raise await self._status_error(response)
            async for event in source.aiter_sse():
                data = event.data.strip()
                if not data:
                    continue
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except json.JSONDecodeError as exc:
                    raise EngineError(FailureKind.MALFORMED, f"{self.spec.label}: a stream "
                                      f"event is not JSON ({exc})") from exc
                if not isinstance(chunk, dict):
                    raise EngineError(FailureKind.MALFORMED,
                                      f"{self.spec.label}: a stream event is not an object")
                if "error" in chunk:
                    raise EngineError(FailureKind.HTTP_5XX, self._scrub(
                        f"{self.spec.label}: the engine failed: {str(chunk['error'])[:BODY_QUOTE]}"))
                yield chunk

    # --- the two protocols -----------------------------------------------------------------

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        common: dict[str, Any] = {"temperature": request.temperature, "top_p": request.top_p,
                                  "seed": request.seed, "stream": True}
        if self.spec.type is EngineType.LLAMA_CPP:
            common |= {"n_predict": request.max_new_tokens, "cache_prompt": True}
            if request.logprobs:
                common["n_probs"] = 1
            parts = self._fim_parts(request.prompt_ids)
            if parts is None:  # no FIM markers: the prompt as it is, token for token
                return "/completion", common | {"prompt": list(request.prompt_ids)}
            prefix, suffix = parts
            return "/infill", common | {"input_prefix": prefix, "input_suffix": suffix,
                                        "input_extra": [], "prompt": ""}
        body = common | {"model": self._model, "prompt": self.tokenizer.decode(request.prompt_ids),
                         "max_tokens": request.max_new_tokens, "echo": False}
        if request.logprobs:
            body["logprobs"] = 1
        return "/completions", body

    def _fim_parts(self, ids: Sequence[int]) -> tuple[str, str] | None:
        """The prefix and suffix text of a prefix-suffix-middle prompt (as the prompt stage
        cut them to the token budget), for engines that place the FIM markers themselves."""
        fim = self.capabilities.fim_ids
        if fim is None or len(ids) < 3 or ids[0] != fim[0] or ids[-1] != fim[2]:
            return None
        try:
            split = list(ids).index(fim[1])
        except ValueError:
            return None
        return self.tokenizer.decode(ids[1:split]), self.tokenizer.decode(ids[split + 1:-1])

    def _parse(self, chunk: dict[str, Any]) -> tuple[str, list[float], FinishReason | None]:
        """One stream event: (new text, its tokens' log-probabilities, finish or None)."""
        try:
            if self.spec.type is EngineType.LLAMA_CPP:
                text = chunk.get("content", "")
                probs = chunk.get("completion_probabilities") or []
                logprobs = [float(p["logprob"]) for p in probs
                            if isinstance(p, dict) and "logprob" in p]
                finish = None
                if chunk.get("stop"):
                    finish = (FinishReason.LENGTH if chunk.get("stop_type") == "limit"
                              else FinishReason.EOS)
            else:
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                lp = choice.get("logprobs") or {}
                logprobs = [float(v) for v in (lp.get("token_logprobs") or []) if v is not None]
                reason = choice.get("finish_reason")
                finish = None if reason is None else (
                    FinishReason.LENGTH if reason == "length" else FinishReason.EOS)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise EngineError(FailureKind.MALFORMED, f"{self.spec.label}: unexpected stream "
                              f"event ({type(exc).__name__}: {exc})") from exc
        if not isinstance(text, str):
            raise EngineError(FailureKind.MALFORMED, f"{self.spec.label}: text is not a string")
        return text, logprobs, finish

    # --- health ----------------------------------------------------------------------------

    async def health(self) -> None:
        """Raise EngineError unless the engine answers its health check: ``/health`` for
        llama.cpp, ``/models`` for OpenAI-compatible engines (it also names the model when the
        settings did not)."""
        client = self._http()
        path = "/health" if self.spec.type is EngineType.LLAMA_CPP else "/models"
        try:
            response = await client.get(path, timeout=HEALTH_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from exc
        if response.status_code != 200:
            raise await self._status_error(response)
        if self.spec.type is EngineType.OPENAI:
            try:
                names = [m["id"] for m in response.json()["data"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise EngineError(FailureKind.MALFORMED,
                                  f"{self.spec.label}: /models is not a model list") from exc
            if not self._model and names:
                self._model = names[0]
            elif self._model and names and self._model not in names:
                raise EngineError(FailureKind.HTTP_4XX, f"{self.spec.label}: the engine serves "
                                  f"{names}, not {self._model!r}")

    # --- the rest of the seam --------------------------------------------------------------

    def forget(self, cache_key: str) -> None:
        pass  # the engine manages its own prompt cache

    def prefetch(self, prompt_ids: Sequence[int], cache_key: str | None,
                 delay_s: float = 0.0) -> None:
        pass  # a shared engine's time is not ours to spend on guesses

    def cancel_prefetch(self, cache_key: str | None = None) -> None:
        pass

    def configure(self, max_batch_size: int, batch_timeout_s: float) -> None:
        pass  # the engine batches

    def stats(self) -> dict[str, Any]:
        return {"queueDepth": self._inflight}

    def close(self) -> None:
        client, loop, self._client = self._client, self._loop, None
        if client is None or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(client.aclose())
        else:
            asyncio.run_coroutine_threadsafe(client.aclose(), loop)


async def _cancelled(cancel: CancelToken) -> None:
    while not cancel.cancelled:
        await asyncio.sleep(CANCEL_POLL_S)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
