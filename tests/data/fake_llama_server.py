"""A stand-in for llama.cpp's server in lsp-bench's fast tests: /health, and /infill answering
from a table (the request's ``prompt`` + ``input_prefix``'s last line selects the answer); each
request body is appended to $FAKE_LLAMA_LOG. Started as ``python fake_llama_server.py ... --host
H --port P`` like the real one."""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWERS = {
    # (last line of input_prefix, prompt) -> content
    ("def f(x):", "    "): "return x + 1\n\n",
    ("def f(x):", ""): "    return x + 1\n",
    ("    y = [v for v in x]", "        "): "    return len(y)\n",
}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200 if self.path == "/health" else 404, {"status": "ok"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if log := os.environ.get("FAKE_LLAMA_LOG"):
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(body) + "\n")
        last = body["input_prefix"].rstrip("\n").split("\n")[-1]
        content = ANSWERS.get((last, body["prompt"]), "")
        self._send(200, {"content": content, "stop_type": "eos",
                         "timings": {"prompt_n": 10, "predicted_n": 5, "predicted_ms": 50.0}})


def main() -> None:
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
