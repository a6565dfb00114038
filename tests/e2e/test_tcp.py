"""`pingti-ls --tcp HOST:PORT` serves LSP over a loopback socket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_message(sock: socket.socket) -> dict:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    return json.loads(body[:length])


def test_tcp_transport_initialize_shutdown_exit() -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server", "--tcp", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with sock:
            def send(obj: dict) -> None:
                body = json.dumps(obj).encode()
                sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

            send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"capabilities": {}, "initializationOptions": {"backend": "fake"}}})
            init = _read_message(sock)
            assert init["id"] == 1
            assert init["result"]["capabilities"]["inlineCompletionProvider"] is not None
            send({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
            messages = [_read_message(sock)]
            while messages[-1].get("id") != 2:  # notifications (progress, messages) may come first
                messages.append(_read_message(sock))
            send({"jsonrpc": "2.0", "method": "exit"})
        assert proc.wait(timeout=20) == 0
        assert proc.stdout is not None and proc.stdout.read() == b""  # nothing on stdout
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_bare_port_binds_loopback_says_so_and_metrics_are_served(tmp_path) -> None:
    """``--tcp PORT``: 127.0.0.1 only, and the log says so; ``--metrics-port`` serves
    Prometheus text on loopback."""
    import httpx

    port, metrics = _free_port(), _free_port()
    log = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "server", "--tcp", str(port),
                             "--metrics-port", str(metrics), "--log-file", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while "serving LSP over TCP" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        assert f"on 127.0.0.1:{port} (loopback only)" in log.read_text()
        listening = [line.split() for line in open("/proc/net/tcp").read().splitlines()[1:]]
        bound = {(row[1], row[3]) for row in listening}
        assert (f"0100007F:{port:04X}", "0A") in bound  # 127.0.0.1, LISTEN
        assert (f"00000000:{port:04X}", "0A") not in bound  # not 0.0.0.0
        text = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
        assert "process_resident_memory_bytes" in text
    finally:
        proc.kill()
        proc.wait(timeout=20)
