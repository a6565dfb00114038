"""The VS Code extension (editors/vscode).

- Its settings are the server's: every server setting in the extension's package.json has the
  name, default, enum values and range that ``server/config.py`` accepts (pure Python, no Node).
- ``editors/vscode/scripts/test.sh``: ``npm ci``, type-check, bundle, the extension's unit tests
  (``vscode`` faked), the protocol test against the real ``pingti-ls`` of this environment
  (fake backend) and packaging the ``.vsix``. Skipped only where Node.js or npm is missing.
- ``editors/vscode/scripts/test-real.sh``: the ``.vsix`` in a real VS Code (code-server driven by
  headless chromium): ghost text appears and Tab accepts it. It installs ≈630 MB of tools on its
  first run (≈3-5 minutes, cached afterwards), so it runs only with ``PINGTI_VSCODE_REAL=1``.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from server.config import _ALIASES, _FIELD_TYPES, _RANGES, Config, parse_settings

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "editors" / "vscode"
BIN = Path(sys.executable).parent
CLIENT_KEYS = {"languages"}
CLIENT_PREFIXES = ("server.", "trace.")
TEST_TIMEOUT = 900  # npm ci from a cold npm cache is most of it; a warm run takes ~20 s
REAL_TIMEOUT = 1500  # the first run installs code-server (minutes); later runs take ~1 min


def _server_settings() -> dict[str, dict[str, Any]]:
    manifest = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
    props = manifest["contributes"]["configuration"]["properties"]
    out = {}
    for full, schema in props.items():
        key = full.removeprefix("pingti.")
        if key in CLIENT_KEYS or key.startswith(CLIENT_PREFIXES):
            continue
        out[key] = schema
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):  # a list setting (backends): a JSON array
        return [_plain(v) for v in value]
    return value.value if isinstance(value, enum.Enum) else value


def test_extension_settings_are_the_servers() -> None:
    settings = _server_settings()
    assert settings, "no server settings in package.json"
    defaults = Config()
    for key, schema in settings.items():
        assert key in _ALIASES, f"pingti.{key} is not a server setting (server/config.py _ALIASES)"
        field = _ALIASES[key]
        assert schema["default"] == _plain(getattr(defaults, field)), f"default of pingti.{key}"
        ftype = _FIELD_TYPES[field]
        if isinstance(ftype, type) and issubclass(ftype, enum.Enum):
            assert sorted(schema.get("enum", [])) == sorted(m.value for m in ftype), \
                f"enum of pingti.{key}: {schema.get('enum')} vs {[m.value for m in ftype]}"
        if field in _RANGES:
            lo, hi = _RANGES[field]
            assert (schema.get("minimum"), schema.get("maximum")) == (lo, hi), f"range of pingti.{key}"
        if typing.get_origin(ftype) is tuple:  # a list (backends: of objects)
            expected_type = "array"
        else:
            expected_type = {int: "integer", float: "number", str: "string"}.get(ftype, "string")
        assert schema["type"] == expected_type, f"type of pingti.{key}"
        # What the extension sends is accepted without a message: the default, the bounds and
        # every enum value.
        samples = [schema["default"], *schema.get("enum", [])]
        samples += [schema[b] for b in ("minimum", "maximum") if b in schema]
        for value in samples:
            parsed = parse_settings({key: value})
            assert parsed.errors == [], (key, value, parsed.errors)


def _node_major() -> int | None:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)
    try:
        return int(out.stdout.strip().lstrip("v").split(".")[0])
    except ValueError:
        return None


NODE = _node_major()
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js and npm are not installed (the VS Code "
                                                      "extension is built and tested with them)")


def _run(script: str, timeout: int, env: dict[str, str] | None = None) -> str:
    server = BIN / "pingti-ls"
    full_env = {**os.environ, **(env or {})}
    if server.exists():
        full_env.setdefault("PINGTI_LS", str(server))  # this environment's server
    try:
        proc = subprocess.run(["bash", str(EXTENSION / "scripts" / script)], cwd=EXTENSION,
                              env=full_env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        pytest.fail(f"{script} timed out after {timeout}s:\n{text[-6000:]}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{output[-8000:]}"
    return output


@needs_node
def test_vscode_extension_builds_and_passes_its_tests() -> None:
    assert NODE is not None and NODE >= 20, f"Node.js >= 20 is needed, found {NODE}"
    output = _run("test.sh", TEST_TIMEOUT)
    assert "# fail 0" in output
    assert (EXTENSION / "pingti-0.1.0.vsix").exists()


@needs_node
@pytest.mark.skipif(os.environ.get("PINGTI_VSCODE_REAL") != "1",
                    reason="the real VS Code test installs code-server and chromium (~630 MB); "
                           "run it with PINGTI_VSCODE_REAL=1")
def test_vscode_extension_in_real_vscode() -> None:
    output = _run("test-real.sh", REAL_TIMEOUT)
    assert "ghost text accepted" in output
