"""lsp-bench's peer (lspbench/peer.py): the /infill request llama.vim would send, the way
llama.vim applies the answer, finding the server, and a run against a stand-in server over HTTP
(a run against a stand-in server: tests/e2e/test_lspbench_peer.py; the real llama-server runs
in the benchmark: BENCHMARKS.md, issue 17)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lspbench.peer import (
    LLAMA_VIM_PARAMS,
    N_PREFIX_LINES,
    N_SUFFIX_LINES,
    BlankLine,
    PeerError,
    find_llama_server,
    llama_vim_apply,
    llama_vim_request,
)


def test_request_on_a_line_with_code() -> None:
    req = llama_vim_request("a\nb\n    x = f(", ")\nc\nd")
    assert req.body["input_prefix"] == "a\nb\n"
    assert req.body["prompt"] == "    x = f("
    assert req.body["input_suffix"] == ")\nc\nd\n"
    assert req.body["n_indent"] == 4
    for key, value in LLAMA_VIM_PARAMS.items():
        assert req.body[key] == value
    assert req.body["samplers"][:3] == ["top_k", "top_p", "infill"]


def test_request_keeps_256_lines_before_and_64_after() -> None:
    before = "".join(f"p{i}\n" for i in range(400))
    after = "\n" + "\n".join(f"s{i}" for i in range(100))
    req = llama_vim_request(before + "    ", after)
    assert req.body["input_prefix"].count("\n") == N_PREFIX_LINES
    assert req.body["input_prefix"].startswith("p144\n")
    assert req.body["input_suffix"] == "\n" + "\n".join(f"s{i}" for i in range(N_SUFFIX_LINES)) \
        + "\n"


def test_request_on_a_blank_line_both_ways() -> None:
    indent = llama_vim_request("def f(x):\n    ", "\n")
    assert (indent.body["prompt"], indent.body["n_indent"]) == ("    ", 4)
    start = llama_vim_request("def f(x):\n    ", "\n", BlankLine.LINE_START)
    assert (start.body["prompt"], start.body["n_indent"]) == ("", 0)
    assert start.from_line_start and not indent.from_line_start


def test_apply_inserts_and_drops_trailing_blank_lines() -> None:
    req = llama_vim_request("def f(x):\n    ", "\n")
    assert llama_vim_apply("return x\n\n", req) == ("return x", 0)
    assert llama_vim_apply("\n\n", req) == ("", 0)


def test_apply_from_the_line_start_replaces_the_whitespace() -> None:
    req = llama_vim_request("def f(x):\n    for v in x:\n        y = v\n        ", "\n",
                            BlankLine.LINE_START)
    assert llama_vim_apply("    return y\n", req) == ("    return y", 8)  # a dedent
    assert llama_vim_apply("            z = 1\n", req) == ("            z = 1", 8)


def test_apply_drops_an_answer_that_repeats_the_next_line() -> None:
    req = llama_vim_request("def f(x):\n    ", "\n    return x\n")
    assert llama_vim_apply("return x", req) == ("", 0)
    assert llama_vim_apply("y = x\n    return x", req) == ("y = x\n    return x", 0)
    code = llama_vim_request("    x = f(", ")\n")
    assert llama_vim_apply(")", code) == ("", 0)  # only the rest of the line


def test_finding_the_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_exec = tmp_path / "llama-server"
    not_exec.write_text("")
    with pytest.raises(PeerError, match="not an executable"):
        find_llama_server(not_exec)
    not_exec.chmod(not_exec.stat().st_mode | stat.S_IXUSR)
    assert find_llama_server(not_exec) == not_exec
    monkeypatch.setenv("PINGTI_LLAMA_SERVER", str(not_exec))
    assert find_llama_server() == not_exec
    monkeypatch.delenv("PINGTI_LLAMA_SERVER")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert find_llama_server(cache=tmp_path / "cache") is None


def test_a_build_step_that_cannot_run_is_a_clear_error(tmp_path: Path) -> None:
    from lspbench.peer import _run

    with pytest.raises(PeerError, match="cannot run .*needs cmake"):
        _run([str(tmp_path / "no-cmake"), "--version"])
    with pytest.raises(PeerError, match=r"failed \(3\)"):
        _run(["sh", "-c", "echo oops; exit 3"])
