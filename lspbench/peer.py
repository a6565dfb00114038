"""llama.cpp's own server as a peer in lsp-bench: its ``/infill`` endpoint asked the way llama.vim
asks (ggml-org/llama.vim, autoload/llama.vim), and its answer applied the way llama.vim applies
it, so one lsp-bench run can print pingti's column and the peer's side by side.

What llama.vim does, and this module copies:

* the request: 256 lines before the cursor's line (``input_prefix``), the cursor's line up to the
  cursor (``prompt``), the rest of that line and 64 lines after it (``input_suffix``),
  ``n_indent`` = the cursor line's indentation (lines indented less end the answer), the
  samplers top-k 40, top-p 0.99 and llama.cpp's *infill* sampler, ``n_predict`` 256 and the
  time limits 500 ms (prompt) / 1,500 ms (prediction);
* the answer is dropped when it only repeats the text after the cursor (llama.vim's rules).

Two choices:

* a temperature-0 step ends the sampler chain (greedy after the infill sampler), where llama.vim
  samples from what the infill sampler leaves: the figures compare with pingti's greedy first
  suggestion;
* a cursor on a whitespace-only line: llama.vim (2025) sends it from the line's start, with an
  empty ``prompt`` and ``n_indent`` 0, and the answer, which brings its own indentation,
  replaces the line's whitespace. Without the indentation stop the answer then runs past the
  hole (on 10 multi-line holes half did not parse). By default the peer is asked the stronger
  way, the cursor line's whitespace as ``prompt`` and its width as ``n_indent``
  (``BlankLine.INDENT``); ``BlankLine.LINE_START`` is llama.vim's exact way.
"""

from __future__ import annotations

import asyncio
import enum
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lspbench.client import Answer, ServerLog

N_PREFIX_LINES = 256
N_SUFFIX_LINES = 64
# llama.vim's defaults (s:default_config).
LLAMA_VIM_PARAMS: dict[str, Any] = {
    "n_predict": 256, "top_k": 40, "top_p": 0.99, "t_max_prompt_ms": 500,
    "t_max_predict_ms": 1500, "stream": False, "cache_prompt": True,
    "samplers": ["top_k", "top_p", "infill", "temperature"], "temperature": 0.0, "seed": 0,
}
PEER_NAME = "llama-server"
ENV_BINARY = "PINGTI_LLAMA_SERVER"


class BlankLine(enum.Enum):
    """How a cursor on a whitespace-only line is sent (see the module's notes)."""

    INDENT = "indent"
    LINE_START = "line-start"


class PeerError(RuntimeError):
    """The peer cannot be found, built or started; the message says what to do."""


@dataclass(frozen=True)
class InfillRequest:
    body: dict[str, Any]
    line_before: str  # the cursor's line up to the cursor
    line_after: str  # the rest of the cursor's line
    next_lines: list[str] = field(default_factory=list)  # the lines after the cursor's line
    from_line_start: bool = False  # a whitespace-only line sent from its start


def llama_vim_request(prefix: str, suffix: str,
                      blank: BlankLine = BlankLine.INDENT) -> InfillRequest:
    """The ``/infill`` body llama.vim sends for a cursor between ``prefix`` and ``suffix``."""
    lines_before = prefix.split("\n")
    line_before = lines_before[-1]
    after = suffix.split("\n")
    line_after, next_lines = after[0], after[1:]
    cursor_line = line_before + line_after
    from_start = not cursor_line.strip() and blank is BlankLine.LINE_START
    if from_start:  # whitespace only: llama.vim starts from the line's start
        indent, prompt, rest = 0, "", ""
    else:
        indent = len(line_before) - len(line_before.lstrip())
        prompt, rest = line_before, line_after
    above = lines_before[:-1][-N_PREFIX_LINES:]
    below = next_lines[:N_SUFFIX_LINES]
    body = {"input_prefix": "\n".join(above) + "\n", "input_suffix": rest + "\n" +
            "\n".join(below) + "\n", "input_extra": [], "prompt": prompt, "n_indent": indent,
            **LLAMA_VIM_PARAMS}
    return InfillRequest(body, line_before, line_after, next_lines, from_start)


def llama_vim_apply(content: str, req: InfillRequest) -> tuple[str, int]:
    """What accepting llama.vim's suggestion inserts at the cursor, and how many characters
    before the cursor it replaces: ``("", 0)`` when llama.vim shows nothing."""
    lines = content.split("\n")
    while lines and lines[-1] == "":  # llama.vim drops trailing empty lines
        lines.pop()
    if not lines:
        return "", 0
    line_cur = req.line_before + req.line_after
    pos_x = len(req.line_before)
    blank = req.from_line_start
    if blank:  # the suggestion's own indentation replaces the line's whitespace
        lead = min(len(lines[0]) - len(lines[0].lstrip()), len(line_cur))
        line_cur, first = lines[0][:lead], lines[0][lead:]
        lines = [first, *lines[1:]]
    prefix_part, suffix_part = line_cur[:pos_x], line_cur[pos_x:]
    nxt = req.next_lines
    if len(lines) == 1 and lines[0] == "":
        return "", 0
    if len(lines) > 1 and lines[0] == "" and lines[1:] == nxt[:len(lines) - 1]:
        return "", 0
    if len(lines) == 1 and lines[0] == suffix_part:
        return "", 0
    k = 0  # the first non-blank line after the cursor's (vim stops at the last line)
    while k < len(nxt) - 1 and not nxt[k].strip():
        k += 1
    if nxt and prefix_part + lines[0] == nxt[k]:
        if len(lines) == 1:
            return "", 0
        if len(lines) == 2 and k + 1 < len(nxt) and \
                lines[-1] == nxt[k + 1][:len(lines[-1])]:
            return "", 0
        if len(lines) > 2 and lines[1:] == nxt[k + 1:k + len(lines)]:
            return "", 0
    if blank:  # accepted: the line becomes the suggestion's first line, indentation and all
        return lines_joined(prefix_part, lines), pos_x
    return "\n".join(lines), 0


def lines_joined(kept: str, lines: Sequence[str]) -> str:
    return "\n".join([kept + lines[0], *lines[1:]])


# --- finding or building llama-server --------------------------------------------------------


def find_llama_server(explicit: Path | None = None, cache: Path | None = None) -> Path | None:
    """``explicit``, ``$PINGTI_LLAMA_SERVER``, ``llama-server`` on PATH, or one built before in
    the cache (:func:`build_llama_server`), in that order."""
    for candidate in (explicit, os.environ.get(ENV_BINARY) or None):
        if candidate is not None:
            path = Path(candidate).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise PeerError(f"{path} is not an executable llama-server")
            return path
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    built = _build_dir(cache) / "bin" / "llama-server"
    return built if built.is_file() else None


def _build_dir(cache: Path | None) -> Path:
    from server.model_assets import cache_root

    version = _llama_cpp_python_version()
    return (cache or cache_root()) / "peer" / f"llama-cpp-python-{version}" / "build"


def _llama_cpp_python_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError as exc:
        raise PeerError("llama-cpp-python is not installed: run scripts/setup.sh") from exc


def build_llama_server(cache: Path | None = None, jobs: int | None = None) -> Path:
    """Build llama.cpp's server from the llama-cpp-python sdist pingti itself runs on (the same
    llama.cpp source), with the same CPU flags as scripts/setup.sh. About 10 minutes on 2 cores;
    the binary stays in the cache."""
    return build_llama_tool(PEER_NAME, cache, jobs)


def built_llama_tool(target: str, cache: Path | None = None) -> Path | None:
    """A llama.cpp program :func:`build_llama_tool` built before, or None."""
    binary = _build_dir(cache) / "bin" / target
    return binary if binary.is_file() else None


def build_llama_tool(target: str, cache: Path | None = None, jobs: int | None = None) -> Path:
    """Build one of llama.cpp's programs (``llama-server``, ``llama-bench``,
    ``llama-batched-bench``) from the llama-cpp-python sdist pingti runs on, as
    :func:`build_llama_server` does; one build folder for all of them."""
    build = _build_dir(cache)
    binary = build / "bin" / target
    if binary.is_file():
        return binary
    version = _llama_cpp_python_version()
    src_root = build.parent / "src"
    log = sys.stderr
    if not (src_root / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        with tempfile.TemporaryDirectory(prefix="pingti-peer-") as tmp:
            print(f"lsp-bench: downloading the llama-cpp-python {version} sdist", file=log)
            # Only this package from source: --no-binary :all: would compile cmake itself.
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                  "llama-cpp-python", f"llama-cpp-python=={version}", "-d", tmp])
            sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            if not sdists:
                raise PeerError("pip download found no llama-cpp-python sdist")
            with tarfile.open(sdists[0]) as tar:
                tar.extractall(tmp, filter="data")
            unpacked = next(p for p in Path(tmp).iterdir() if p.is_dir())
            src_root.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(src_root, ignore_errors=True)
            shutil.move(str(unpacked), src_root)
    cmake = shutil.which("cmake") or str(Path(sys.executable).parent / "cmake")
    llama = src_root / "vendor" / "llama.cpp"
    print(f"lsp-bench: building {target} in {build} (about 10 minutes on 2 cores)", file=log)
    _run([cmake, "-S", str(llama), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
          "-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON",
          "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"])
    _run([cmake, "--build", str(build), "--target", target, "-j",
          str(jobs or os.cpu_count() or 2)])
    if not binary.is_file():
        raise PeerError(f"the build finished but {binary} is missing")
    return binary


def _run(cmd: Sequence[str]) -> None:
    try:
        proc = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    except OSError as exc:  # e.g. no cmake
        raise PeerError(f"cannot run {cmd[0]}: {exc} (building llama-server needs cmake and a "
                        "C++ compiler: pip install cmake, apt install g++)") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise PeerError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{tail}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(binary: Path, model: Path, threads: int) -> list[str]:
    """llama-server as llama.vim's docs start it for a CPU: one slot, prompt cache reuse (the
    client adds the address)."""
    return [str(binary), "-m", str(model), "-t", str(threads), "-c", "8192", "-np", "1",
            "--cache-reuse", "256", "--no-webui"]


# --- the client lsp-bench drives --------------------------------------------------------------


class InfillPeerClient:
    """The peer behind the same calls lsp-bench makes of an LSP server (start, wait_ready, open,
    suggest, close, status, stop)."""

    def __init__(self) -> None:
        self.log = ServerLog()
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._docs: dict[str, str] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._http: Any = None
        self._url = ""
        self._log_fh: Any = None
        self._blank = BlankLine.INDENT

    async def start(self, command: Sequence[str], settings: dict[str, Any],
                    stderr_log: Path | None = None) -> None:
        import httpx

        self._blank = BlankLine(settings.get("blankLine", BlankLine.INDENT.value))
        port = free_port()  # chosen per start: a run's options (and resuming) do not name it
        self._url = f"http://127.0.0.1:{port}"
        self._log_fh = stderr_log.open("ab") if stderr_log is not None else subprocess.DEVNULL
        self._proc = await asyncio.create_subprocess_exec(
            *command, "--host", "127.0.0.1", "--port", str(port), stdout=self._log_fh,
            stderr=self._log_fh, stdin=subprocess.DEVNULL)
        self._http = httpx.AsyncClient(base_url=self._url, timeout=httpx.Timeout(600.0))

    async def wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.returncode is not None:
                raise RuntimeError(f"llama-server exited with status {self._proc.returncode}")
            try:
                r = await self._http.get("/health", timeout=2.0)
                if r.status_code == 200:
                    return None
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama-server was not ready within {timeout:.0f} s")
            await asyncio.sleep(0.25)

    async def status(self, uri: str | None = None) -> dict[str, Any] | None:
        return None

    def open(self, uri: str, text: str) -> None:
        self._docs[uri] = text

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    async def suggest(self, uri: str, line: int, character: int, method: str,
                      timeout: float) -> Answer:
        import httpx

        from server.documents import Document, PositionEncoding

        text = self._docs[uri]
        offset = Document(uri, text).offset_at(line, character, PositionEncoding.UTF16)
        req = llama_vim_request(text[:offset], text[offset:], self._blank)
        t0 = time.perf_counter()
        try:
            r = await self._http.post("/infill", json=req.body, timeout=timeout)
            r.raise_for_status()
            data = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            return Answer([], time.perf_counter() - t0, error=f"/infill: {exc}")
        latency = time.perf_counter() - t0
        middle, cut = llama_vim_apply(str(data.get("content", "")), req)
        timings = data.get("timings") or {}
        stats = {"promptTokens": timings.get("prompt_n"),
                 "generatedTokens": timings.get("predicted_n"),
                 "decodeS": (timings.get("predicted_ms") or 0) / 1000 or None,
                 "source": PEER_NAME, "stop": data.get("stop_type")}
        # An empty suggestion is no suggestion, as an editor shows it.
        return Answer([middle] if middle else [], latency, stats=stats,
                      cuts=[cut] if middle else [])

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except asyncio.TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._log_fh not in (None, subprocess.DEVNULL):
            self._log_fh.close()
