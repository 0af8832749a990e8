"""The one framing every sandbox socket uses (child.send_msg / recv_msg), and what the judge makes of frames a
hostile sample forges on its own socket: torn, stalled, oversized or garbage frames are failure verdicts."""

from __future__ import annotations

import socket
import time

import pytest

from lmlab.evals.humaneval import child as wire
from lmlab.evals.humaneval import data
from lmlab.evals.humaneval.sandbox import TIMED_OUT, Pool, SandboxConfig, record_calls


def test_round_trip_and_descriptor_passing():
    a, b = socket.socketpair()
    x, y = socket.socketpair()
    with a, b, x, y:
        wire.send_msg(a, {"op": "run"}, (x.fileno(),))
        fds: list[int] = []
        assert wire.recv_msg(b, fds=fds) == {"op": "run"}
        assert len(fds) == 1
        with socket.socket(fileno=fds[0]) as passed:
            passed.sendall(b"hi")
            assert y.recv(2) == b"hi"
        wire.send_msg(a, ["ret", wire.encode((1, "é", {2: b"\x00"}))])
        assert wire.decode(wire.recv_msg(b, time.monotonic() + 1)[1]) == (1, "é", {2: b"\x00"})


@pytest.mark.parametrize("raw, error", [
    (b"", EOFError), (b"\x00\x00", EOFError), (b"\x00\x00\x00\x09[1,", EOFError),
    (b"\xff\xff\xff\xff", wire.FrameError), (b"\x00\x00\x00\x03abc", ValueError),
], ids=["closed", "torn-header", "torn-body", "oversized", "not-json"])
def test_bad_frames_raise(raw, error):
    a, b = socket.socketpair()
    with a, b:
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(error):
            wire.recv_msg(b, time.monotonic() + 1)


def test_stalled_frame_times_out():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"\x00\x00\x00\x09[1,")
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            wire.recv_msg(b, t + 0.2)
        assert time.monotonic() - t < 1


# the candidate finds its own socket (the only one it holds) and writes a forged frame on it
FORGE = """    import os, stat, time
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, {raw!r})
        except OSError:
            pass
{then}"""


@pytest.mark.parametrize("raw, then, verdict", [
    (b"\x00\x00\x01\x00[", "    os._exit(0)\n", "failed: candidate process exited before answering"),
    (b"\x00\x00\x01\x00[", "    time.sleep(30)\n", TIMED_OUT),
    (b"\xff\xff\xff\xff", "    time.sleep(30)\n", "failed: reply of 4294967295 bytes exceeds"),
    (b"\x00\x00\x00\x03abc", "    time.sleep(30)\n", "failed: bad reply from candidate"),
    (b"\x00\x00\x00\x07{\"x\":1}", "    time.sleep(30)\n", "failed: malformed reply"),
], ids=["torn", "stalled", "oversized", "not-json", "not-a-reply"])
def test_forged_frames_from_the_sample_are_failures(raw, then, verdict):
    p = data.load_problems()["HumanEval/0"]
    code = data.judge_code(p)
    calls = record_calls(code, p["entry_point"], data.oracle(p))
    with Pool(SandboxConfig(timeout=1.0), 1) as pool:
        for live in (False, True):
            t = time.monotonic()
            got = pool.run(data.program(p, FORGE.format(raw=raw, then=then)), p["entry_point"], code,
                           None if live else calls)
            assert got.startswith(verdict), got
            assert time.monotonic() - t < 1.0 + 2.0
        # the judge is alive and the same worker still serves samples
        assert pool.run(data.program(p, p["canonical_solution"]), p["entry_point"], code, calls) == "passed"
