"""Run untrusted code (model-written tests) in layers of isolation.

Layers, outermost first (see SECURITY.md for what each one does and does not protect):

1. **bubblewrap** (``bwrap``): new PID, network, IPC, UTS and cgroup namespaces (no network at
   all), the host's root mounted read-only, a private ``/tmp``, the home directory (and ``/run``,
   with the host's sockets) replaced by an empty tmpfs (so ``~/.ssh`` and friends do not exist),
   only the work directory writable, an environment cleared down to a short whitelist, killed
   with its parent.
2. **inside** (``testgen/_confine.py``, run by the sandboxed interpreter before the code):
   rlimits (address space, CPU seconds, file size, open files, processes, no core dumps), a
   switch to an unprivileged uid when started as root (so the process limit holds), Landlock
   write restriction to the work directory and ``/tmp``, and a seccomp filter that makes
   ``socket()`` fail for every address family but ``AF_UNIX`` (and io_uring fail altogether).
3. **outside**: a wall-clock timeout that kills the whole process group.

Every layer is detected at start-up (:func:`detect`, ``pingti-ls --check-sandbox``). Without
bubblewrap, generated code is refused unless the user set ``sandbox: "none"`` (then only the
inside layers and the timeout apply, and the answer says so).
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The unprivileged identity used when pingti runs as root (Debian's "nobody").
NOBODY = 65534
# Variables that survive into the sandbox (values from the host); everything else is dropped,
# so tokens such as GITHUB_TOKEN or AWS_SECRET_ACCESS_KEY never reach generated code.
ENV_WHITELIST = ("LANG", "LC_ALL", "TZ")


class Isolation(enum.Enum):
    AUTO = "auto"  # bubblewrap, or refuse to run
    BWRAP = "bwrap"  # bubblewrap, or refuse to run (same as auto, stated explicitly)
    NONE = "none"  # explicitly no namespaces: rlimits, uid, Landlock, seccomp, timeout only


class Verdict(enum.Enum):
    OK = "ok"  # exited 0
    FAILED = "failed"  # exited non-zero (a failing test, an exception)
    TIMEOUT = "timeout"  # wall-clock limit: the process group was killed
    CPU_LIMIT = "cpu_limit"  # RLIMIT_CPU (SIGXCPU, or SIGKILL at the hard limit)
    MEMORY_LIMIT = "memory_limit"  # RLIMIT_AS: MemoryError or killed while allocating
    FILE_LIMIT = "file_limit"  # RLIMIT_FSIZE (SIGXFSZ)
    PROCESS_LIMIT = "process_limit"  # RLIMIT_NPROC: could not fork
    KILLED = "killed"  # another signal
    REFUSED = "refused"  # no isolation available and sandbox "none" not chosen
    ERROR = "error"  # the sandbox itself could not start


@dataclass(frozen=True)
class Limits:
    wall_s: float = 60.0
    cpu_s: int = 30
    memory_bytes: int = 2 * 2**30
    file_bytes: int = 64 * 2**20
    open_files: int = 256
    processes: int = 64


@dataclass(frozen=True)
class Layer:
    name: str
    available: bool
    detail: str


@dataclass(frozen=True)
class SandboxReport:
    layers: tuple[Layer, ...]
    isolation: Isolation

    @property
    def usable(self) -> bool:
        """Generated code may run: bubblewrap works, or the user chose no isolation."""
        return self.isolation is Isolation.NONE or self.layer("bubblewrap").available

    def layer(self, name: str) -> Layer:
        return next(x for x in self.layers if x.name == name)

    def refusal(self) -> str:
        why = self.layer("bubblewrap").detail
        return ("pingti: no sandbox for generated code (" + why + "). Install bubblewrap "
                "(Debian/Ubuntu: apt install bubblewrap), or set the pingti setting "
                "sandbox to \"none\" to run generated tests with only rlimits and a timeout.")

    def to_json(self) -> dict[str, Any]:
        return {"isolation": self.isolation.value, "usable": self.usable,
                "layers": [asdict(x) for x in self.layers]}


@dataclass(frozen=True)
class SandboxResult:
    verdict: Verdict
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


_detect_lock = threading.Lock()
_detected: dict[Isolation, SandboxReport] = {}


def detect(isolation: Isolation = Isolation.AUTO, refresh: bool = False) -> SandboxReport:
    """Which layers work on this machine (each is tried for real, once per process)."""
    with _detect_lock:
        if refresh or isolation not in _detected:
            _detected[isolation] = SandboxReport(tuple(_probe_layers()), isolation)
        return _detected[isolation]


def _probe_layers() -> list[Layer]:
    layers = []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        layers.append(Layer("bubblewrap", False, "bwrap not found on PATH"))
    else:
        try:
            probe = subprocess.run(
                [bwrap, *_namespace_args(), "--ro-bind", "/", "/", "--dev", "/dev",
                 "--proc", "/proc", "--", "/bin/true"],
                capture_output=True, timeout=20, check=False)
            ok = probe.returncode == 0
            detail = bwrap if ok else probe.stderr.decode(errors="replace").strip()[:200]
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, detail = False, str(exc)
        layers.append(Layer("bubblewrap", ok, detail))
    layers.append(Layer("rlimits", True, "address space, CPU, file size, open files, processes, "
                        "no core dumps"))
    root = os.geteuid() == 0
    layers.append(Layer("unprivileged uid", True,
                        f"runs as uid {NOBODY}" if root else f"runs as uid {os.geteuid()}"))
    layers.append(_probe_landlock())
    layers.append(_probe_seccomp())
    layers.append(Layer("wall-clock timeout", True, "kills the whole process group"))
    return layers


def _probe_landlock() -> Layer:
    try:
        import landlock

        abi = landlock.landlock_abi_version()
        return Layer("landlock", abi > 0, f"ABI {abi}: writes only in the work dir and /tmp")
    except Exception as exc:  # noqa: BLE001 - any failure means the layer is missing
        return Layer("landlock", False, f"unavailable: {exc}")


def _probe_seccomp() -> Layer:
    try:
        import pyseccomp

        pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
        return Layer("seccomp", True, "socket() denied except AF_UNIX, no io_uring")
    except Exception as exc:  # noqa: BLE001
        return Layer("seccomp", False, f"unavailable: {exc}")


def _namespace_args() -> list[str]:
    # As root, no user namespace: the process must stay in the initial one to switch to an
    # unprivileged uid there (where RLIMIT_NPROC counts). As a user, bwrap needs one.
    common = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
              "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() == 0:
        return [*common, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return ["--unshare-user", *common]


class Sandbox:
    """Runs a command confined; :meth:`run` never raises for what the command does."""

    def __init__(self, isolation: Isolation = Isolation.AUTO, limits: Limits | None = None,
                 readonly_paths: Sequence[str | Path] = (), python: str | None = None) -> None:
        self.isolation = isolation
        self.limits = limits or Limits()
        self.readonly_paths = [Path(p) for p in readonly_paths]
        self.python = python or sys.executable
        self.report = detect(isolation)

    def make_workdir(self) -> Path:
        """A fresh directory the sandboxed process may write (owned by it when it is nobody)."""
        path = Path(tempfile.mkdtemp(prefix="pingti-sandbox-"))
        if os.geteuid() == 0:
            os.chown(path, NOBODY, NOBODY)
        return path

    def run(self, argv: Sequence[str], workdir: Path, *, env: Mapping[str, str] | None = None,
            limits: Limits | None = None, cancel: threading.Event | None = None,
            readonly: Sequence[str | Path] = ()) -> SandboxResult:
        """Run ``argv`` (``python`` means the sandbox's interpreter) with ``workdir`` as the
        current and only writable directory. ``env`` adds variables (e.g. PYTHONPATH);
        ``readonly`` are host paths the command must see (read-only), e.g. the project."""
        t0 = time.monotonic()
        if not self.report.usable:
            return SandboxResult(Verdict.REFUSED, None, "", "", 0.0, self.report.refusal())
        lim = limits or self.limits
        workdir = workdir.resolve()
        argv = [self.python if a == "python" else a for a in argv]
        confine = {"workdir": str(workdir), "limits": asdict(lim),
                   "setuid": NOBODY if os.geteuid() == 0 else None,
                   # Layers detect() found: _confine stops rather than run without one.
                   "require": [x for x in ("landlock", "seccomp") if self.report.layer(x).available]}
        # By path, in isolated mode: nothing from the work dir or the environment is imported
        # before the confinement is in place.
        inner = [self.python, "-I", str(Path(__file__).resolve().parent / "_confine.py"),
                 json.dumps(confine), "--", *argv]
        environment = {k: os.environ[k] for k in ENV_WHITELIST if k in os.environ}
        environment.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir),
                            "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
                            "PYTHONHASHSEED": "0", **(env or {})})
        if self.report.layer("bubblewrap").available and self.isolation is not Isolation.NONE:
            cmd = [*self._bwrap_args(workdir, environment,
                                     [Path(p).resolve() for p in readonly]), "--", *inner]
            popen_env: dict[str, str] = {}
        else:
            cmd, popen_env = inner, environment
        try:
            proc = subprocess.Popen(cmd, cwd=workdir, env=popen_env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            return SandboxResult(Verdict.ERROR, None, "", str(exc), time.monotonic() - t0,
                                 f"could not start the sandbox: {exc}")
        out, err, timed_out, cancelled = _communicate(proc, lim.wall_s, cancel)
        duration = time.monotonic() - t0
        verdict, detail = _classify(proc.returncode, err, timed_out, cancelled, duration, lim)
        return SandboxResult(verdict, proc.returncode, out, err, duration, detail)

    def _bwrap_args(self, workdir: Path, env: Mapping[str, str],
                    readonly: Sequence[Path] = ()) -> list[str]:
        bwrap = shutil.which("bwrap") or "bwrap"
        args = [bwrap, *_namespace_args(), "--ro-bind", "/", "/", "--dev", "/dev",
                "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp", "--clearenv"]
        # The homes, and /run: AF_UNIX stays allowed, and its sockets (the D-Bus system bus, a
        # user's session bus under /run/user, docker.sock) would otherwise be reachable.
        homes = {Path.home().resolve(), Path("/root"), Path("/run"), Path("/var/run").resolve()}
        for home in sorted(homes):
            if home.is_dir() and home != Path("/"):
                args += ["--perms", "0755", "--tmpfs", str(home)]
        # What the sandbox needs from a hidden home: the interpreter and its packages, the
        # project (for testgen._confine) and the paths the caller asked for; read-only.
        extra = [*self.readonly_paths, *readonly]
        # Only testgen/ of pingti's own code (for _confine.py): binding the whole checkout would
        # also bring back its own permissions, and a 0700 checkout folder would then hide the
        # interpreter inside it from the sandbox's uid.
        needed = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
                  Path(__file__).resolve().parent, *extra}
        made: set[Path] = set()
        # /tmp is private too: a project under the host's /tmp must be bound back in.
        hidden_roots = homes | {Path("/tmp")}
        for path in sorted(needed):
            hidden = next((h for h in hidden_roots if _inside(path, h)), None)
            if hidden is None or not path.exists():
                continue
            # The directories between the home and the path, traversable by the sandbox's uid
            # (bwrap would create them 0700).
            for parent in reversed(path.relative_to(hidden).parents):
                d = hidden / parent
                if d != hidden and d not in made:
                    args += ["--perms", "0755", "--dir", str(d)]
                    made.add(d)
            args += ["--ro-bind", str(path), str(path)]
        for path in sorted(set(extra)):
            if path.exists() and not any(_inside(path, h) for h in hidden_roots):
                args += ["--ro-bind", str(path), str(path)]
        args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return args


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def _communicate(proc: subprocess.Popen[bytes], wall_s: float, cancel: threading.Event | None
                 ) -> tuple[str, str, bool, bool]:
    """Wait for ``proc`` at most ``wall_s`` (or until ``cancel``); kill its process group."""
    deadline = time.monotonic() + wall_s
    timed_out = cancelled = False
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    cap = 1 << 20  # keep at most 1 MB of each stream: a test printing forever is not our memory

    def pump(stream: Any, chunks: list[bytes]) -> None:
        size = 0
        for chunk in iter(lambda: stream.read(65536), b""):
            if size < cap:
                chunks.append(chunk[: cap - size])
                size += len(chunk)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err_chunks), daemon=True)]
    for t in threads:
        t.start()
    while proc.poll() is None:
        if time.monotonic() > deadline:
            timed_out = True
            break
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        time.sleep(0.02)
    # The process if it still runs, and anything it left behind in its group (bwrap's PID
    # namespace ends with it anyway; without bwrap the group is all we have).
    _kill_group(proc)
    for t in threads:
        t.join(5)
    decode = lambda chunks: b"".join(chunks).decode("utf-8", "replace")  # noqa: E731
    return decode(out_chunks), decode(err_chunks), timed_out, cancelled


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _classify(rc: int | None, stderr: str, timed_out: bool, cancelled: bool, duration: float,
              limits: Limits) -> tuple[Verdict, str]:
    if cancelled:
        return Verdict.KILLED, "cancelled"
    if timed_out:
        return Verdict.TIMEOUT, f"killed after the wall-clock limit of {limits.wall_s:g} s"
    tail = stderr[-4000:]
    if rc == 0:
        return Verdict.OK, ""
    # RLIMIT_CPU's hard limit (code that ignores SIGXCPU) ends in a SIGKILL like any other (bwrap
    # reports it as 137); a single thread needs at least cpu_s of wall time to get there.
    if rc in (-signal.SIGKILL, 128 + signal.SIGKILL) and duration >= limits.cpu_s \
            and "MemoryError" not in tail:
        return Verdict.CPU_LIMIT, f"stopped at the CPU limit of {limits.cpu_s} s"
    if rc is not None and rc < 0:
        sig = -rc
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and "PINGTI_CPU_LIMIT" in tail):
            return Verdict.CPU_LIMIT, f"stopped at the CPU limit of {limits.cpu_s} s"
        if sig == signal.SIGXFSZ:
            return Verdict.FILE_LIMIT, f"a file grew past {limits.file_bytes} bytes"
        return Verdict.KILLED, f"killed by signal {signal.Signals(sig).name}"
    if rc == 128 + signal.SIGXCPU:
        return Verdict.CPU_LIMIT, f"stopped at the CPU limit of {limits.cpu_s} s"
    if rc == 128 + signal.SIGXFSZ:
        return Verdict.FILE_LIMIT, f"a file grew past {limits.file_bytes} bytes"
    if rc in (128 + signal.SIGKILL, 128 + signal.SIGSEGV) or "MemoryError" in tail:
        if "MemoryError" in tail or "Cannot allocate memory" in tail or rc == 128 + signal.SIGKILL:
            return Verdict.MEMORY_LIMIT, f"memory limit of {limits.memory_bytes} bytes"
    if "BlockingIOError" in tail and "Resource temporarily unavailable" in tail:
        return Verdict.PROCESS_LIMIT, f"process limit of {limits.processes}"
    if "File too large" in tail:
        return Verdict.FILE_LIMIT, f"a file grew past {limits.file_bytes} bytes"
    if "[pingti-sandbox]" in tail:
        return Verdict.ERROR, tail.split("[pingti-sandbox]", 1)[1].strip().splitlines()[0]
    return Verdict.FAILED, f"exit status {rc}"


def check_report_text(report: SandboxReport) -> str:
    """Human-readable summary for ``pingti-ls --check-sandbox``."""
    lines = [f"sandbox: {'usable' if report.usable else 'NOT usable'} "
             f"(isolation setting: {report.isolation.value})"]
    for layer in report.layers:
        lines.append(f"  [{'x' if layer.available else ' '}] {layer.name}: {layer.detail}")
    if not report.usable:
        lines.append(report.refusal())
    return "\n".join(lines)


