"""Command line: ``pingti-ls`` (stdio), ``--tcp HOST:PORT``, ``--selftest``, ``--version``.

Nothing here writes to stdout while serving: stdout is the LSP transport. Logs go to stderr or
to ``--log-file``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from server import __version__
from server.config import force_offline


def _setup_logging(log_file: str | None, level: str) -> None:
    handler: logging.Handler = (logging.FileHandler(log_file, encoding="utf-8") if log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("server").setLevel(level.upper())
    # Progress bars and chatter from the ML libraries would only clutter the log.
    for name in ("transformers", "accelerate", "huggingface_hub", "bitsandbytes"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _parse_tcp(value: str) -> tuple[str, int]:
    """HOST:PORT or :PORT / PORT (then loopback: only an explicit host opens it wider)."""
    host, _, port = value.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pingti-ls", description="pingti language server: local code completions over LSP")
    parser.add_argument("--version", action="version", version=f"pingti-ls {__version__}")
    parser.add_argument("--tcp", type=_parse_tcp, metavar="HOST:PORT",
                        help="serve over TCP instead of stdio (PORT alone: 127.0.0.1:PORT)")
    # Clients (vscode-languageclient among them) add --stdio for the default transport.
    parser.add_argument("--stdio", action="store_true", help="serve over stdin/stdout (default)")
    parser.add_argument("--log-file", help="write logs here instead of stderr")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--selftest", action="store_true",
                        help="load the model, complete a sample function through the real LSP "
                             "path, print the completion and timings, and exit")
    parser.add_argument("--check-sandbox", action="store_true",
                        help="say which isolation layers for generated tests work here, run a "
                             "probe in the sandbox, and exit (0: usable)")
    parser.add_argument("--model", help="model for --selftest (default: the packaged model)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics")
    parser.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                        help="address of the metrics endpoint (default: loopback only)")
    args = parser.parse_args(argv)

    force_offline()
    _setup_logging(args.log_file, args.log_level)
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")

    if args.check_sandbox:
        return _check_sandbox()
    if args.selftest:
        from server.selftest import run_selftest

        return run_selftest(model=args.model)

    from server.lsp import server

    if args.metrics_port is not None:
        from server.metrics import start_exporter

        try:
            start_exporter(args.metrics_port, args.metrics_host)
        except OSError as exc:  # a taken port: say so, serve on without metrics
            logging.getLogger("server").error("cannot serve metrics on %s:%d: %s",
                                              args.metrics_host, args.metrics_port, exc)
    if args.tcp:
        host, port = args.tcp
        log = logging.getLogger("server")
        if _loopback(host):
            log.info("serving LSP over TCP on %s:%d (loopback only)", host, port)
        else:
            # The LSP has no authentication: whoever reaches the port can read the documents
            # the editor sends and run "Generate tests".
            log.warning("serving LSP over TCP on %s:%d: reachable from other machines, with "
                        "no authentication (you asked for this host explicitly)", host, port)
        server.start_tcp(host, port)
    else:
        server.start_io()
    return server.exit_code


def _check_sandbox() -> int:
    from testgen.sandbox import Sandbox, check_report_text

    sandbox = Sandbox()
    print(check_report_text(sandbox.report))
    if not sandbox.report.usable:
        return 1
    import shutil

    workdir = sandbox.make_workdir()
    try:
        probe = sandbox.run(["python", "-c", "import os, socket\n"
                             "try:\n    socket.socket()\n    print('network: OPEN')\n"
                             "except OSError:\n    print('network: denied')\n"
                             "print('uid:', os.getuid())"], workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"probe: {probe.verdict.value} {probe.stdout.strip()} {probe.detail}".rstrip())
    return 0 if probe.ok and "network: denied" in probe.stdout else 1


if __name__ == "__main__":
    raise SystemExit(main())
