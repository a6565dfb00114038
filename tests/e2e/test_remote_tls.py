"""``https://`` engines are verified: a self-signed engine is refused unless ``caBundle`` names
its certificate, and the key travels only over the verified connection."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.backends.base import CancelToken, FinishReason, GenerationRequest
from server.config import parse_settings
from server.remote import EngineError, FailureKind, RemoteGenerator
from tests.unit_core.test_remote import CAPS, CharTokenizer


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list]]:
    """A tiny OpenAI-compatible engine over TLS with a self-signed certificate for 127.0.0.1."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    seen: list[dict[str, Any]] = []

    async def models(request: Request) -> Response:
        return JSONResponse({"data": [{"id": "m"}]})

    async def completions(request: Request) -> Response:
        seen.append({"auth": request.headers.get("authorization"), **await request.json()})
        chunk = {"choices": [{"text": "return x", "finish_reason": "stop"}]}
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return Response(body, media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/models", models),
                            Route("/v1/completions", completions, methods=["POST"])])
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           log_level="warning", ssl_certfile=str(cert),
                                           ssl_keyfile=str(key)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the TLS engine did not start"
        time.sleep(0.05)
    yield f"https://127.0.0.1:{port}/v1", cert, seen
    server.should_exit = True
    thread.join(10)


def _gen(url: str, **extra: Any) -> RemoteGenerator:
    parsed = parse_settings({"backends": [{"type": "openai", "url": url, **extra}]})
    assert not parsed.errors, parsed.errors
    return RemoteGenerator(parsed.config.backends[0], CharTokenizer(), CAPS, "m")


async def test_a_self_signed_engine_is_refused_without_its_ca(tls_engine: Any) -> None:
    url, _, seen = tls_engine
    before = len(seen)
    gen = _gen(url, apiKey="sk-tls-1")
    with pytest.raises(EngineError) as info:
        await gen.health()
    assert info.value.kind is FailureKind.CONNECT and "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    with pytest.raises(EngineError):
        await gen.generate([GenerationRequest([104, 105], 4)], CancelToken())
    assert len(seen) == before  # nothing (and no key) reached it
    gen.close()
    await asyncio.sleep(0)


async def test_ca_bundle_trusts_it(tls_engine: Any) -> None:
    url, cert, seen = tls_engine
    gen = _gen(url, caBundle=str(cert), apiKey="sk-tls-2")
    await gen.health()
    (res,) = await gen.generate([GenerationRequest([104, 105], 4)], CancelToken())
    assert res.text == "return x" and res.finish is FinishReason.EOS
    assert seen[-1]["auth"] == "Bearer sk-tls-2" and seen[-1]["model"] == "m"
    gen.close()
    await asyncio.sleep(0)
