"""Attacks on the sandbox for generated code (``testgen/sandbox.py``).

Each attack is a small Python script run with small limits through ``Sandbox.run``; every test
asserts the verdict AND that the host was not harmed (no connection reached a host listener, no
host file appeared or changed, no secret leaked, no process was left behind). SECURITY.md says
what each layer covers and what it does not.

The whole module is skipped where bubblewrap does not work (``scripts/setup.sh`` installs it).
"""

from __future__ import annotations

import functools
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from testgen.sandbox import (
    NOBODY,
    Isolation,
    Layer,
    Limits,
    Sandbox,
    SandboxReport,
    SandboxResult,
    Verdict,
    check_report_text,
    detect,
)

REPORT = detect()
pytestmark = pytest.mark.skipif(
    not REPORT.layer("bubblewrap").available,
    reason="bubblewrap (bwrap) does not work here: " + REPORT.layer("bubblewrap").detail
    + " (scripts/setup.sh installs it; `pingti-ls --check-sandbox` shows the layers)")

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
# The uid the sandboxed code runs as, seen from the host.
SANDBOX_UID = NOBODY if IS_ROOT else os.getuid()
SMALL = Limits(wall_s=10.0, cpu_s=5, memory_bytes=512 * 2**20, file_bytes=16 * 2**20,
               open_files=64, processes=32)

Attack = Callable[..., tuple[SandboxResult, Path]]


@functools.cache
def python_for(isolation: Isolation) -> str | None:
    """The interpreter for attack.py. Under bubblewrap, the sandbox's own ("python": the
    interpreter's directories are mounted for it). Without namespaces the uid switch still
    happens when root, and an interpreter under /root (pyenv) is out of reach of that uid:
    then a system Python runs the script (the confinement is applied before it starts)."""
    if isolation is not Isolation.NONE:
        return "python"
    for exe in (sys.executable, shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")):
        if not exe:
            continue
        try:
            probe = subprocess.run([exe, "-I", "-c", "pass"], user=SANDBOX_UID if IS_ROOT else None,
                                   cwd="/", capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return exe
    return None


def show(r: SandboxResult) -> str:
    return (f"verdict={r.verdict} rc={r.returncode} {r.duration_s:.2f}s detail={r.detail!r}\n"
            f"--- stdout ---\n{r.stdout[-3000:]}\n--- stderr ---\n{r.stderr[-3000:]}")


def needs_layer(name: str) -> pytest.MarkDecorator:
    layer = REPORT.layer(name)
    return pytest.mark.skipif(not layer.available, reason=f"{name} unavailable: {layer.detail}")


@pytest.fixture
def attack() -> Iterator[Attack]:
    """``attack(source, limits=..., isolation=..., argv=..., files=...)`` writes ``source`` as
    attack.py into a fresh work dir and runs it; returns the result and the work dir."""
    made: list[Path] = []

    def run(source: str, *, limits: Limits = SMALL, isolation: Isolation = Isolation.AUTO,
            argv: list[str] | None = None, files: dict[str, str] | None = None,
            sandbox: Sandbox | None = None) -> tuple[SandboxResult, Path]:
        python = python_for(isolation)
        if python is None:
            pytest.skip(f"no Python that uid {SANDBOX_UID} may execute without bubblewrap")
        sb = sandbox or Sandbox(isolation, limits=limits)
        workdir = sb.make_workdir()
        made.append(workdir)
        (workdir / "attack.py").write_text(textwrap.dedent(source))
        for name, text in (files or {}).items():
            (workdir / name).write_text(textwrap.dedent(text))
        return sb.run(argv or [python, "attack.py"], workdir), workdir

    yield run
    for workdir in made:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A world-writable directory on the host outside /tmp (where sandboxed code may write
    under ``sandbox: "none"``), so that only the sandbox's layers, not file permissions, keep
    the sandboxed code out of it: next to the repository, unless that is under /tmp (a CI
    checkout), then /var/tmp."""
    candidates = [ROOT.parent, ROOT, Path("/var/tmp")]
    path = None
    for base in candidates:
        if base.resolve().is_relative_to("/tmp"):
            continue
        try:
            path = Path(tempfile.mkdtemp(prefix=".pingti-attack-", dir=base))
            break
        except OSError:
            continue
    if path is None:
        pytest.skip("no writable directory outside /tmp for the host-side checks")
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def leftovers(workdir: Path, before: set[int]) -> list[psutil.Process]:
    """Processes on the host that a sandbox run left behind: new processes of the sandbox uid
    (when it is a uid of its own) or any process whose working directory is ``workdir``."""
    found = []
    for proc in psutil.process_iter(["uids", "cwd"]):
        try:
            uid = proc.info["uids"].real if proc.info["uids"] else None
            if (IS_ROOT and uid == SANDBOX_UID and proc.pid not in before) \
                    or proc.info["cwd"] == str(workdir):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_no_leftovers(workdir: Path, before: set[int], timeout: float = 5.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := leftovers(workdir, before)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def sandbox_uid_pids() -> set[int]:
    return {p.pid for p in psutil.process_iter(["uids"])
            if p.info["uids"] and p.info["uids"].real == SANDBOX_UID}


# --- the basics --------------------------------------------------------------------------------

def test_detect_lists_every_layer() -> None:
    names = [layer.name for layer in detect().layers]
    assert names == ["bubblewrap", "rlimits", "unprivileged uid", "landlock", "seccomp",
                     "wall-clock timeout"]
    for always in ("bubblewrap", "rlimits", "unprivileged uid", "wall-clock timeout"):
        assert REPORT.layer(always).available, REPORT.layer(always)
    assert REPORT.usable
    text = check_report_text(REPORT)
    assert all(name in text for name in names)


def test_plain_script_ok(attack: Attack) -> None:
    r, _ = attack("""
        import os
        print("hello from the sandbox", os.getuid())
    """)
    assert r.verdict is Verdict.OK, show(r)
    assert r.returncode == 0
    assert r.stdout == f"hello from the sandbox {SANDBOX_UID}\n"


def test_failing_assert_failed(attack: Attack) -> None:
    r, _ = attack("assert 1 + 1 == 3, 'arithmetic is broken'\n")
    assert r.verdict is Verdict.FAILED, show(r)
    assert "AssertionError: arithmetic is broken" in r.stderr


def test_pytest_runs_inside(attack: Attack) -> None:
    limits = Limits(wall_s=30.0, cpu_s=20, memory_bytes=2**30, processes=32)
    r, _ = attack("", limits=limits,
                  argv=["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_tiny.py"],
                  files={"test_tiny.py": """
                      def test_add():
                          assert 1 + 1 == 2
                  """})
    assert r.verdict is Verdict.OK, show(r)
    assert "1 passed" in r.stdout


def test_refused_without_bubblewrap(attack: Attack) -> None:
    sb = Sandbox(limits=SMALL)
    sb.report = SandboxReport(
        tuple(Layer("bubblewrap", False, "bwrap not found on PATH") if layer.name == "bubblewrap"
              else layer for layer in REPORT.layers), Isolation.AUTO)
    r, workdir = attack("open('ran.txt', 'w').write('it ran')\n", sandbox=sb)
    assert r.verdict is Verdict.REFUSED, show(r)
    assert r.returncode is None and r.stdout == r.stderr == ""
    assert "bubblewrap" in r.detail and "sandbox" in r.detail and '"none"' in r.detail
    assert not (workdir / "ran.txt").exists()


@needs_layer("landlock")
@needs_layer("seccomp")
@pytest.mark.parametrize("isolation", [Isolation.AUTO, Isolation.NONE])
def test_inside_layers_are_live(attack: Attack, isolation: Isolation) -> None:
    # Under bubblewrap the read-only mounts and the empty network would hide a missing inside
    # layer: look at each one directly.
    r, _ = attack("""
        import os, socket
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
        print("seccomp", status["Seccomp"].strip(), "nnp", status["NoNewPrivs"].strip())
        with open("/dev/null", "w") as f:  # allowed by the Landlock rules
            f.write("x")
        for what, action in (("dev-zero", lambda: open("/dev/zero", "w")),  # mode 666; Landlock
                             ("inet", lambda: socket.socket(socket.AF_INET))):
            try:
                action()
                print("DID", what)
            except OSError as exc:
                print("denied", what, exc.errno)
        import resource
        print("nproc", resource.getrlimit(resource.RLIMIT_NPROC),
              "core", resource.getrlimit(resource.RLIMIT_CORE))
    """, isolation=isolation)
    assert r.verdict is Verdict.OK, show(r)
    assert "seccomp 2 nnp 1" in r.stdout, show(r)
    assert "DID" not in r.stdout, show(r)
    assert "denied dev-zero 13" in r.stdout and "denied inet 1" in r.stdout, show(r)
    assert f"nproc ({SMALL.processes}, {SMALL.processes}) core (0, 0)" in r.stdout, show(r)


# --- network -----------------------------------------------------------------------------------

@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def assert_never_accepted(sock: socket.socket) -> None:
    readable, _, _ = select.select([sock], [], [], 0.2)
    assert not readable, "the host listener got a connection from the sandbox"
    with pytest.raises(BlockingIOError):
        sock.accept()


NETWORK_ATTACK = """
    import socket, sys
    # Local sockets stay allowed (multiprocessing needs them).
    a, b = socket.socketpair()
    a.sendall(b"x")
    assert b.recv(1) == b"x"
    print("unix ok", flush=True)
    for family, kind in ((socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM),
                         (socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW)):
        try:
            socket.socket(family, kind).close()
            print("SOCKET", family, kind)
        except OSError as exc:
            print(f"denied {{family!r}}: {{exc!r}}", file=sys.stderr)
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=3).sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print("CONNECTED 1.1.1.1")
    except OSError as exc:
        print(f"denied 1.1.1.1: {{exc!r}}", file=sys.stderr)
    # Uncaught: the attack fails when the host listener cannot be reached.
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"pwned")
    print("CONNECTED 127.0.0.1")
"""


@pytest.mark.parametrize("isolation", [
    Isolation.AUTO,
    # Without namespaces, seccomp alone must stop it.
    pytest.param(Isolation.NONE, marks=needs_layer("seccomp")),
])
def test_network_denied(attack: Attack, listener: socket.socket, isolation: Isolation) -> None:
    port = listener.getsockname()[1]
    r, _ = attack(NETWORK_ATTACK.format(port=port), isolation=isolation)
    assert r.verdict is Verdict.FAILED, show(r)
    assert "unix ok" in r.stdout
    assert "CONNECTED" not in r.stdout and "SOCKET" not in r.stdout, show(r)
    assert "denied 1.1.1.1" in r.stderr, show(r)
    # The denial: seccomp's EPERM at socket() (without seccomp: the empty network namespace).
    denial = "Operation not permitted" if REPORT.layer("seccomp").available else "Network is unreachable"
    assert denial in r.stderr, show(r)
    assert_never_accepted(listener)


IO_URING_ATTACK = """
    # A TCP socket through io_uring (IORING_OP_SOCKET), without the socket() system call.
    import ctypes, mmap, os, socket, struct, sys
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 4, params)  # io_uring_setup
    if fd < 0:
        sys.exit("io_uring_setup: " + os.strerror(ctypes.get_errno()))
    sq_entries, cq_entries = struct.unpack_from("II", params, 0)
    sq_off = struct.unpack_from("IIIIIIIIQ", params, 40)
    cq_off = struct.unpack_from("IIIIIIIIQ", params, 80)
    sq = mmap.mmap(fd, sq_off[6] + sq_entries * 4, offset=0)
    cq = mmap.mmap(fd, cq_off[5] + cq_entries * 16, offset=0x8000000)
    sqes = mmap.mmap(fd, sq_entries * 64, offset=0x10000000)
    sqe = bytearray(64)
    struct.pack_into("BBHiQQII", sqe, 0, 45, 0, 0, socket.AF_INET, socket.SOCK_STREAM, 0, 0, 0)
    sqes[0:64] = bytes(sqe)
    tail, mask = struct.unpack_from("I", sq, sq_off[1])[0], struct.unpack_from("I", sq, sq_off[2])[0]
    struct.pack_into("I", sq, sq_off[6] + (tail & mask) * 4, 0)
    struct.pack_into("I", sq, sq_off[1], tail + 1)
    libc.syscall(426, fd, 1, 1, 1, None, 0)  # io_uring_enter: submit, wait for one
    head, cmask = struct.unpack_from("I", cq, cq_off[0])[0], struct.unpack_from("I", cq, cq_off[2])[0]
    _, res, _ = struct.unpack_from("QiI", cq, cq_off[5] + (head & cmask) * 16)
    if res < 0:
        sys.exit("IORING_OP_SOCKET: " + os.strerror(-res))
    print("SOCKET via io_uring", flush=True)
    socket.socket(fileno=res).connect(("127.0.0.1", {port}))
    print("CONNECTED", flush=True)
"""


@pytest.mark.parametrize("isolation", [
    Isolation.AUTO,
    pytest.param(Isolation.NONE, marks=needs_layer("seccomp")),
])
def test_io_uring_socket_denied(attack: Attack, listener: socket.socket, isolation: Isolation) -> None:
    r, _ = attack(IO_URING_ATTACK.format(port=listener.getsockname()[1]), isolation=isolation)
    assert r.verdict is Verdict.FAILED, show(r)
    assert "CONNECTED" not in r.stdout, show(r)
    if REPORT.layer("seccomp").available:
        assert "io_uring_setup: Operation not permitted" in r.stderr, show(r)
    assert_never_accepted(listener)


@pytest.fixture
def run_socket() -> Iterator[tuple[Path, socket.socket]]:
    """A world-writable AF_UNIX socket where host services keep theirs (/run, or the user's
    /run/user/UID), listening."""
    base = Path("/run") if IS_ROOT else Path(f"/run/user/{os.getuid()}")
    if not os.access(base, os.W_OK):
        pytest.skip(f"cannot create a socket in {base}")
    path = Path(tempfile.mkdtemp(prefix="pingti-attack-", dir=base))
    path.chmod(0o755)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path / "service.sock"))
    (path / "service.sock").chmod(0o666)
    sock.listen(4)
    sock.setblocking(False)
    yield path / "service.sock", sock
    sock.close()
    shutil.rmtree(path, ignore_errors=True)


def test_host_service_sockets_unreachable(attack: Attack,
                                          run_socket: tuple[Path, socket.socket]) -> None:
    # AF_UNIX is allowed (multiprocessing needs it): the host's service sockets must be hidden.
    path, sock = run_socket
    r, _ = attack(f"""
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.connect({str(path)!r})
        s.sendall(b"pwned")
        print("CONNECTED")
    """)
    assert r.verdict is Verdict.FAILED, show(r)
    assert "CONNECTED" not in r.stdout and "FileNotFoundError" in r.stderr, show(r)
    assert_never_accepted(sock)


# --- the file system ---------------------------------------------------------------------------

@pytest.mark.parametrize("isolation", [
    Isolation.AUTO,
    # Without namespaces, Landlock alone must stop it.
    pytest.param(Isolation.NONE, marks=needs_layer("landlock")),
])
def test_write_outside_workdir_denied(attack: Attack, host_dir: Path, isolation: Isolation) -> None:
    target = host_dir / "pwned.txt"
    new_dir = host_dir / "pwned-dir"
    r, workdir = attack(f"""
        import os, sys
        try:
            os.mkdir({str(new_dir)!r})
            print("MADE DIR")
        except OSError as exc:
            print("denied mkdir:", repr(exc), file=sys.stderr)
        with open({str(target)!r}, "w") as f:
            f.write("pwned")
        print("WROTE")
    """, isolation=isolation)
    assert r.verdict is Verdict.FAILED, show(r)
    assert "WROTE" not in r.stdout and "MADE DIR" not in r.stdout
    assert ("Read-only file system" in r.stderr or "Permission denied" in r.stderr
            or "No such file or directory" in r.stderr), show(r)
    assert not target.exists() and not new_dir.exists()
    assert sorted(p.name for p in host_dir.iterdir()) == []


@pytest.mark.parametrize("isolation", [
    Isolation.AUTO,
    pytest.param(Isolation.NONE, marks=needs_layer("landlock")),
])
def test_overwrite_planted_host_file_denied(attack: Attack, host_dir: Path,
                                            isolation: Isolation) -> None:
    planted = host_dir / "planted.txt"
    planted.write_text("original")
    planted.chmod(0o666)  # writable by anyone: only the sandbox stands in the way
    r, _ = attack(f"""
        import os, sys
        planted = {str(planted)!r}
        denied = []
        def attempt(what, action):
            try:
                action()
                print("DID", what)
            except OSError as exc:
                denied.append(what)
                print("denied", what, repr(exc), file=sys.stderr)
        attempt("overwrite", lambda: open(planted, "w").write("pwned"))
        attempt("append", lambda: open(planted, "a").write("pwned"))
        attempt("truncate", lambda: os.truncate(planted, 0))
        attempt("rename", lambda: os.rename(planted, planted + ".moved"))
        attempt("unlink", lambda: os.unlink(planted))
        # Through a symbolic link made in the (writable) work dir.
        os.symlink(planted, "link")
        attempt("symlink", lambda: open("link", "w").write("pwned"))
        attempt("hardlink", lambda: (os.link(planted, "hard"), open("hard", "w").write("pwned")))
        sys.exit("denied: " + ", ".join(denied))
    """, isolation=isolation)
    assert r.verdict is Verdict.FAILED, show(r)
    assert "DID" not in r.stdout, show(r)
    assert planted.read_text() == "original"
    assert sorted(p.name for p in host_dir.iterdir()) == ["planted.txt"]


def test_host_tmp_is_private(attack: Attack) -> None:
    token = secrets.token_hex(8)
    host_marker = Path("/tmp") / f"pingti-attack-{token}"
    host_tmp_dir = Path(tempfile.mkdtemp(prefix="pingti-attack-host-", dir="/tmp"))
    planted = host_tmp_dir / "planted.txt"
    planted.write_text("original")
    try:
        r, _ = attack(f"""
            import os
            # Succeeds: the sandbox's /tmp is its own tmpfs.
            with open({str(host_marker)!r}, "w") as f:
                f.write("pwned")
            print("wrote marker")
            # The host's /tmp is not there at all.
            print("sees host dir:", os.path.exists({str(host_tmp_dir)!r}))
            print("listing:", sorted(os.listdir("/tmp")))
        """)
        assert r.verdict is Verdict.OK, show(r)
        assert "wrote marker" in r.stdout and "sees host dir: False" in r.stdout, show(r)
        assert host_tmp_dir.name not in r.stdout
        assert not host_marker.exists()
        assert planted.read_text() == "original"
    finally:
        host_marker.unlink(missing_ok=True)
        shutil.rmtree(host_tmp_dir, ignore_errors=True)


# --- secrets -----------------------------------------------------------------------------------

@pytest.fixture
def home_secret() -> Iterator[tuple[Path, str]]:
    token = secrets.token_hex(16)
    path = Path.home() / ".pingti-test-secret"
    path.write_text(token + "\n")
    path.chmod(0o644)
    yield path, token
    path.unlink(missing_ok=True)


def test_home_secret_invisible(attack: Attack, home_secret: tuple[Path, str]) -> None:
    path, token = home_secret
    r, _ = attack(f"""
        import os
        path = {str(path)!r}
        for attempt in (path, os.path.expanduser("~/.pingti-test-secret")):
            try:
                with open(attempt) as f:
                    print("READ", attempt, f.read())
            except OSError as exc:
                print("denied", attempt, repr(exc))
        home = os.path.dirname(path)
        print("home listing:", sorted(os.listdir(home)) if os.path.isdir(home) else None)
    """)
    assert r.verdict is Verdict.OK, show(r)
    assert "READ" not in r.stdout, show(r)
    assert token not in r.stdout and token not in r.stderr
    assert ".pingti-test-secret" not in r.stdout.split("home listing:", 1)[1]


@pytest.mark.parametrize("isolation", [Isolation.AUTO, Isolation.NONE])
def test_env_secret_invisible(attack: Attack, monkeypatch: pytest.MonkeyPatch,
                              isolation: Isolation) -> None:
    token = secrets.token_hex(16)
    monkeypatch.setenv("PINGTI_TEST_TOKEN", token)
    r, _ = attack("""
        import glob, os
        print("environ:", dict(os.environ))
        # Every environment this process can see, its own and its parents' included.
        for name in sorted(glob.glob("/proc/[0-9]*/environ")):
            try:
                with open(name, "rb") as f:
                    print(name, f.read())
            except OSError as exc:
                print(name, "denied", exc)
    """, isolation=isolation)
    assert r.verdict is Verdict.OK, show(r)
    assert "'PATH'" in r.stdout and "/proc/" in r.stdout  # the dump did happen
    assert token not in r.stdout and token not in r.stderr
    assert "PINGTI_TEST_TOKEN" not in r.stdout


@pytest.mark.skipif(not IS_ROOT, reason="the uid switch only happens when started as root")
def test_cannot_regain_root(attack: Attack) -> None:
    r, _ = attack("""
        import os
        print("uid", os.getuid(), os.geteuid(), os.getgid(), os.getgroups())
        for what, action in (("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0)),
                             ("shadow", lambda: open("/etc/shadow").read())):
            try:
                action()
                print("DID", what)
            except OSError as exc:
                print("denied", what, repr(exc))
    """)
    assert r.verdict is Verdict.OK, show(r)
    assert f"uid {NOBODY} {NOBODY} {NOBODY} []" in r.stdout, show(r)
    assert "DID" not in r.stdout, show(r)


def test_host_processes_invisible(attack: Attack) -> None:
    # A host process of the sandbox's own uid: only the PID namespace keeps it out of reach.
    sleeper = subprocess.Popen(["sleep", "60"], user=SANDBOX_UID if IS_ROOT else None)
    try:
        r, _ = attack(f"""
            import os, signal
            print("pids:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
            os.kill({sleeper.pid}, signal.SIGKILL)
            print("KILLED")
        """)
        assert r.verdict is Verdict.FAILED, show(r)
        assert "ProcessLookupError" in r.stderr and "KILLED" not in r.stdout, show(r)
        assert sleeper.poll() is None
        assert f" {sleeper.pid}," not in r.stdout and f" {sleeper.pid}]" not in r.stdout
    finally:
        sleeper.kill()
        sleeper.wait()


# --- resource limits ---------------------------------------------------------------------------

def test_fork_bomb(attack: Attack) -> None:
    before = sandbox_uid_pids()
    limits = Limits(wall_s=8.0, cpu_s=5, memory_bytes=512 * 2**20, processes=32)
    r, workdir = attack("""
        import os, sys
        if os.getuid() == 0:
            sys.exit("refusing to fork-bomb as root: the process limit would not hold")
        while True:
            os.fork()
    """, limits=limits)
    assert r.verdict in {Verdict.PROCESS_LIMIT, Verdict.TIMEOUT}, show(r)
    assert r.duration_s < limits.wall_s + 3, show(r)
    assert not wait_no_leftovers(workdir, before)
    # The host can still start processes, also as the sandbox's uid (its count went back down).
    assert subprocess.run(["true"], timeout=10).returncode == 0
    if IS_ROOT:
        assert subprocess.run(["true"], user=SANDBOX_UID, timeout=10).returncode == 0


def test_memory_limit(attack: Attack) -> None:
    r, _ = attack("""
        buf = bytearray(4 * 2**30)
        print("ALLOCATED", len(buf))
    """)
    assert r.verdict is Verdict.MEMORY_LIMIT, show(r)
    assert "ALLOCATED" not in r.stdout
    assert "MemoryError" in r.stderr


@pytest.mark.parametrize("isolation", [Isolation.AUTO, Isolation.NONE])
def test_cpu_limit(attack: Attack, isolation: Isolation) -> None:
    limits = Limits(wall_s=20.0, cpu_s=2, memory_bytes=512 * 2**20, processes=32)
    r, _ = attack("""
        import os
        print("uid", os.getuid(), flush=True)
        while True:
            pass
    """, limits=limits, isolation=isolation)
    assert r.verdict is Verdict.CPU_LIMIT, show(r)
    # Still the unprivileged uid without namespaces (and the rlimit holds for it).
    assert r.stdout == f"uid {SANDBOX_UID}\n"
    assert r.duration_s < limits.cpu_s + 4, show(r)


@pytest.mark.parametrize("isolation", [Isolation.AUTO, Isolation.NONE])
def test_cpu_limit_with_sigxcpu_ignored(attack: Attack, isolation: Isolation) -> None:
    # SIGKILL at the hard limit (one second later) ends it all the same.
    limits = Limits(wall_s=20.0, cpu_s=2, memory_bytes=512 * 2**20, processes=32)
    r, _ = attack("""
        import signal
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        while True:
            pass
    """, limits=limits, isolation=isolation)
    assert r.verdict is Verdict.CPU_LIMIT, show(r)
    assert r.duration_s < limits.cpu_s + 5, show(r)


@pytest.mark.parametrize("sigxfsz", ["ignored", "default"])
def test_file_limit(attack: Attack, sigxfsz: str) -> None:
    # Python ignores SIGXFSZ (the write fails with EFBIG); with the default action the process
    # is killed by it. Either way: FILE_LIMIT.
    r, workdir = attack(f"""
        import signal
        if {sigxfsz == "default"}:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        chunk = b"x" * 2**20
        with open("big.bin", "wb") as f:
            for _ in range(1024):
                f.write(chunk)
        print("WROTE 1 GB")
    """)
    assert r.verdict is Verdict.FILE_LIMIT, show(r)
    assert "WROTE" not in r.stdout
    assert (workdir / "big.bin").stat().st_size <= SMALL.file_bytes


def test_sleep_forever_times_out(attack: Attack) -> None:
    before = sandbox_uid_pids()
    limits = Limits(wall_s=3.0, cpu_s=5, memory_bytes=512 * 2**20, processes=32)
    # With a child that leaves the process group and session too: the PID namespace ends it.
    r, workdir = attack("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            time.sleep(10**6)
        print("sleeping", flush=True)
        time.sleep(10**6)
    """, limits=limits)
    assert r.verdict is Verdict.TIMEOUT, show(r)
    assert limits.wall_s <= r.duration_s < limits.wall_s + 2, show(r)
    assert r.stdout == "sleeping\n"
    assert not wait_no_leftovers(workdir, before)


def test_host_still_fine() -> None:
    # After all of the above: the host starts processes and has no stray sandbox processes.
    assert subprocess.run(["true"], timeout=10).returncode == 0
    if IS_ROOT:
        stray = [p for p in psutil.process_iter(["uids", "cmdline"])
                 if p.info["uids"] and p.info["uids"].real == NOBODY
                 and any("attack.py" in part for part in p.info["cmdline"] or ())]
        assert not stray
