"""The system-call filter, in the real sandbox: each denied call fails inside a sample process (EPERM; clone3
ENOSYS so that glibc falls back to clone), and the calls an unprivileged process could otherwise make do
succeed in a sample without the filter (so the filter, not the uid or the namespaces, is what stops them)."""

from __future__ import annotations

import errno
import platform

import pytest

from lmlab.evals.humaneval import data
from lmlab.evals.humaneval.sandbox import PASSED, Pool, SandboxConfig

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="probes use x86_64 system call numbers")

# each probe returns errno (0: the call succeeded); raw numbers from arch/x86/entry/syscalls/syscall_64.tbl
PROBE = r'''
def probe():
    import ctypes, os, socket, subprocess
    libc = ctypes.CDLL(None, use_errno=True)
    def sys(nr, *args):
        ctypes.set_errno(0)
        rc = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
        return 0 if rc >= 0 else ctypes.get_errno()
    def py(fn):
        try:
            fn()
            return 0
        except OSError as e:
            return e.errno
    buf = ctypes.create_string_buffer(8)
    iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
    out = {
        "socket": py(lambda: socket.socket(socket.AF_UNIX).close()),
        "socket_inet": py(lambda: socket.socket(socket.AF_INET).close()),
        "socketpair": py(lambda: [s.close() for s in socket.socketpair()]),
        "process_vm_readv": sys(310, os.getpid(), ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0),
        "execve": py(lambda: subprocess.run(["/bin/true"], check=True)),
        "personality": sys(135, 0xFFFFFFFF),
        "ptrace": sys(101, 0x4206, 1, 0, 0),  # PTRACE_SEIZE of PID 1 (ourselves, in our namespace)
        "mount": sys(165, 0, 0, 0, 0, 0),
        "umount2": sys(166, 0, 0),
        "pivot_root": sys(155, 0, 0),
        "chroot": py(lambda: os.chroot("/")),
        "unshare_user": sys(272, 0x10000000),
        "unshare_net": sys(272, 0x40000000),
        "setns": sys(308, 0, 0),
        "clone_newuser": sys(56, 0x10000000 | 17, 0, 0, 0, 0),
        "clone_newpid": sys(56, 0x20000000 | 17, 0, 0, 0, 0),
        "clone3": sys(435, 0, 0),
        "bpf": sys(321, 0, 0, 0),
        "perf_event_open": sys(298, 0, 0, -1, -1, 0),
        "userfaultfd": sys(323, 0),
        "io_uring_setup": sys(425, 1, 0),
        "keyctl": sys(250, 0, 0, 0, 0, 0),
        "kexec_load": sys(246, 0, 0, 0, 0),
        "init_module": sys(175, 0, 0, 0),
        "open_by_handle_at": sys(304, 0, 0, 0),
        "ioctl_tiocsti": sys(16, 0, 0x5412, 0),
        "seccomp_mode": libc.prctl(21, 0, 0, 0, 0),  # PR_GET_SECCOMP: 2 = filtered
    }
    return out
'''
# calls an unprivileged uid in the jail could make without the filter (their success is shown below)
ALLOWED_WITHOUT_FILTER = ("socket", "socket_inet", "socketpair", "process_vm_readv", "execve", "personality")
DENIED = [k for k in ("socket", "socket_inet", "socketpair", "process_vm_readv", "execve", "personality", "ptrace",
                      "mount", "umount2", "pivot_root", "chroot", "unshare_user", "unshare_net", "setns",
                      "clone_newuser", "clone_newpid", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
                      "keyctl", "kexec_load", "init_module", "open_by_handle_at", "ioctl_tiocsti")]


def probe(seccomp: bool) -> dict:
    """Run PROBE in a fresh sample process; its dict comes back through the failing assert's message."""
    prob = {"task_id": "X/seccomp", "prompt": PROBE, "entry_point": "probe",
            "test": "def check(candidate):\n    r = candidate()\n    assert r is None, repr(r)\n"}
    with Pool(SandboxConfig(seccomp=seccomp), 1) as pool:
        if seccomp and not pool.isolation.get("seccomp"):
            pytest.skip(f"no seccomp filter here: {pool.isolation}")
        verdict = pool.run(data.program(prob, ""), "probe", data.judge_code(prob))
    assert verdict.startswith("failed: AssertionError: {"), verdict
    import ast

    return ast.literal_eval(verdict.split("AssertionError: ", 1)[1])


def test_each_denied_call_fails_inside_a_sample():
    got = probe(seccomp=True)
    assert got["seccomp_mode"] == 2
    assert {k: got[k] for k in DENIED} == dict.fromkeys(DENIED, errno.EPERM)
    assert got["clone3"] == errno.ENOSYS  # glibc then uses clone, whose flags the filter can read


def test_without_the_filter_those_calls_succeed():
    """The control: with seccomp off, the same sample makes the calls an unprivileged process may make."""
    got = probe(seccomp=False)
    assert got["seccomp_mode"] == 0
    assert {k: got[k] for k in ALLOWED_WITHOUT_FILTER} == dict.fromkeys(ALLOWED_WITHOUT_FILTER, 0)


def test_threads_fork_and_ordinary_programs_still_work():
    """The filter must not break what correct solutions do: threads (clone3 -> clone fallback), fork, files."""
    body = ("    import threading, os\n    out = []\n    t = threading.Thread(target=lambda: out.append(1))\n"
            "    t.start()\n    t.join()\n    pid = os.fork()\n    if pid == 0:\n        os._exit(7)\n"
            "    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7 and out == [1]\n"
            "    open('f.txt', 'w').write('x')\n")
    p = data.load_problems()["HumanEval/0"]
    with Pool(SandboxConfig(), 1) as pool:
        assert pool.run(data.program(p, body + p["canonical_solution"]), p["entry_point"], data.judge_code(p)) == PASSED
