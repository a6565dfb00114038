"""``pingti-engine``: an OpenAI-compatible engine on a GGUF model (the packaged one by default).

llama-cpp-python's own server (``llama_cpp.server``: ``/v1/completions`` with streaming,
``/v1/models``) on the same llama.cpp build pingti runs locally. What this adds to ``python -m
llama_cpp.server``: the packaged model by name (``--model default``), and llama.cpp's CPU
kernels chosen for this CPU (our build registers none by itself: server/backends/ggml_cpu.py).
It is what the test-suite starts as a real engine, and a way to share one machine's model
with a team without installing anything else; a GPU server would run vLLM or llama.cpp's
``llama-server`` instead (README, "Sharing one GPU server across a team").

    pingti-engine --port 8000                      # loopback only
    pingti-engine --host 0.0.0.0 --port 8000       # reachable from the network (no TLS: put a
                                                   # reverse proxy with TLS in front)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pingti-engine", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default",
                        help="`default` (the packaged model) or a .gguf file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--alias", default="", help="the model name clients send "
                                                     "(default: the file's name)")
    parser.add_argument("--api-key", default=os.environ.get("PINGTI_ENGINE_API_KEY") or None,
                        help="require this bearer key (default: $PINGTI_ENGINE_API_KEY)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("pingti.engine")

    from server.config import force_offline
    from server.model_assets import ModelError, ModelFormat, cache_root, resolve_model

    force_offline()
    cache = cache_root()
    try:
        source = resolve_model(args.model, cache, lambda m: log.info("%s", m))
    except ModelError as exc:
        log.error("%s", exc)
        return 2
    if source.format is not ModelFormat.GGUF:
        log.error("pingti-engine serves .gguf models; %s is not one", source.path)
        return 2
    try:
        import uvicorn
        from llama_cpp.server.app import create_app
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError as exc:
        log.error("pingti-engine needs llama-cpp-python's server packages: %s", exc)
        return 2
    from server.backends.ggml_cpu import ensure_cpu_backend

    variant = ensure_cpu_backend(source.path, cache)
    log.info("CPU kernels: %s", variant or "built in")
    threads = args.threads or max(1, os.cpu_count() or 1)
    model = ModelSettings(model=str(source.path), model_alias=args.alias or source.path.stem,
                          n_ctx=args.n_ctx, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    # interrupt_requests off: by default a new request ends the stream of the one running,
    # which clients see as a stream cut short; requests wait their turn instead.
    server = ServerSettings(host=args.host, port=args.port, api_key=args.api_key,
                            interrupt_requests=False)
    app = create_app(server_settings=server, model_settings=[model])
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: reachable from other machines over plain HTTP", args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
