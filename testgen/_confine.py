"""Inside the sandbox, before the untrusted program: limits that need the process itself.

Run as ``python -I _confine.py '<json>' -- argv...`` (by path, in isolated mode, so nothing
from the work directory is imported first). In order: rlimits, the unprivileged uid (when
started as root), Landlock (writes only in the work dir and /tmp), seccomp (no network sockets),
then ``execv`` of the program: the confinement is inherited by it and everything it starts.

A layer the kernel lacks is skipped (``detect`` reports it); a layer that is there but fails to
apply stops the run: better no test than an unconfined one.
"""

import errno
import json
import os
import resource
import socket
import sys


def fail(message):
    sys.stderr.write(f"[pingti-sandbox] {message}\n")
    sys.stderr.flush()
    os._exit(126)


def set_limits(lim):
    mem = int(lim["memory_bytes"])
    cpu = int(lim["cpu_s"])
    for name, soft, hard in (
        ("RLIMIT_AS", mem, mem),
        # soft < hard: SIGXCPU first (reported as the CPU limit), SIGKILL a second later.
        ("RLIMIT_CPU", cpu, cpu + 1),
        ("RLIMIT_FSIZE", int(lim["file_bytes"]), int(lim["file_bytes"])),
        ("RLIMIT_NOFILE", int(lim["open_files"]), int(lim["open_files"])),
        ("RLIMIT_NPROC", int(lim["processes"]), int(lim["processes"])),
        ("RLIMIT_CORE", 0, 0),
    ):
        resource.setrlimit(getattr(resource, name), (soft, hard))


def drop_privileges(uid):
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        fail("could not switch to the unprivileged uid")


def load_bindings(required):
    """Import the Landlock and seccomp bindings while still privileged: after the switch to the
    unprivileged uid the interpreter's own directory may be out of reach (a pyenv Python under
    /root), and an import that fails then must not drop a layer silently. A binding that
    :func:`detect` found (``required``) but that does not import here stops the run."""
    modules = {}
    for layer, name in (("landlock", "landlock"), ("seccomp", "pyseccomp")):
        try:
            modules[layer] = __import__(name)
        except ImportError as exc:
            if layer in required:
                fail(f"could not load the {layer} layer: {exc}")
            modules[layer] = None
    return modules


def apply_landlock(workdir, landlock):
    if landlock is None:
        return
    FSAccess = landlock.FSAccess  # noqa: N806 - the library's name
    abi = landlock.landlock_abi_version()
    if abi <= 0:
        return
    write = (FSAccess.WRITE_FILE | FSAccess.REMOVE_DIR | FSAccess.REMOVE_FILE
             | FSAccess.MAKE_CHAR | FSAccess.MAKE_DIR | FSAccess.MAKE_REG | FSAccess.MAKE_SOCK
             | FSAccess.MAKE_FIFO | FSAccess.MAKE_BLOCK | FSAccess.MAKE_SYM)
    if abi >= 2:
        write |= FSAccess.REFER
    if abi >= 3:
        write |= FSAccess.TRUNCATE
    rules = landlock.Ruleset(restrict_rules=write)
    for path in (workdir, "/tmp"):
        rules.allow(path, rules=write)
    # Writing to /dev/null and the like stays allowed: only device files, no directories.
    rules.allow("/dev/null", rules=FSAccess.WRITE_FILE | (FSAccess.TRUNCATE if abi >= 3 else 0))
    rules.apply()


def apply_seccomp(sc):
    if sc is None:
        return
    f = sc.SyscallFilter(defaction=sc.ALLOW)
    # Everything but local (AF_UNIX) sockets: multiprocessing and the like keep working.
    f.add_rule(sc.ERRNO(errno.EPERM), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    f.add_rule(sc.ERRNO(errno.EPERM), "socketpair", sc.Arg(0, sc.NE, socket.AF_UNIX))
    # io_uring opens sockets (IORING_OP_SOCKET) without the socket() system call.
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        f.add_rule(sc.ERRNO(errno.EPERM), name)
    f.load()


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        fail("usage: _confine.py JSON -- PROGRAM [ARGS...]")
    config = json.loads(sys.argv[1])
    argv = sys.argv[3:]
    workdir = config["workdir"]
    try:
        bindings = load_bindings(config.get("require", ()))
        set_limits(config["limits"])
        if config.get("setuid") is not None and os.geteuid() == 0:
            drop_privileges(int(config["setuid"]))
        apply_landlock(workdir, bindings["landlock"])
        apply_seccomp(bindings["seccomp"])
        os.chdir(workdir)
    except Exception as exc:  # noqa: BLE001 - any failure: do not run unconfined
        fail(f"could not confine the process: {type(exc).__name__}: {exc}")
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        fail(f"could not start {argv[0]}: {exc}")


if __name__ == "__main__":
    main()
