"""read_jsonl: user files are strict (every line counts, with its number); lmlab's own append-only logs may
lose only a torn last line, and say so on stderr. append_jsonl never glues a new row onto a torn one."""

import pytest

from lmlab.errors import DataError
from lmlab.io import append_jsonl, read_jsonl


def test_user_file_malformed_middle_line_names_it(tmp_path):
    p = tmp_path / "user.jsonl"
    p.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(DataError, match=r"user\.jsonl:2 is not valid JSON"):
        read_jsonl(p)
    with pytest.raises(DataError, match=r":2 is not valid JSON"):
        read_jsonl(p, own_log=True)  # a malformed middle line is never a torn write


def test_user_file_malformed_last_line_is_an_error(tmp_path):
    p = tmp_path / "user.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": ')  # no newline: would be "torn" in a log, but this is user data
    with pytest.raises(DataError, match=r"user\.jsonl:3 is not valid JSON"):
        read_jsonl(p)
    p.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(DataError, match=r":2 is not valid JSON \(not UTF-8\)"):
        read_jsonl(p)


def test_own_log_torn_last_line_dropped_with_warning(tmp_path, capsys):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert read_jsonl(p, own_log=True) == [{"step": 1}, {"step": 2}]
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "metrics.jsonl:3" in err and "torn last line" in err


def test_own_log_bad_last_line_with_newline_is_not_torn(tmp_path, capsys):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1}\n{"step": 2\n')  # a whole line was written: damage, not an interrupted append
    with pytest.raises(DataError, match=r"metrics\.jsonl:2"):
        read_jsonl(p, own_log=True)


def test_clean_files_read_silently(tmp_path, capsys):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2}')  # blank lines skipped; a whole last object without newline is kept
    assert read_jsonl(p) == read_jsonl(p, own_log=True) == [{"a": 1}, {"a": 2}]
    assert capsys.readouterr().err == ""


def test_append_after_torn_line_cuts_it(tmp_path, capsys):
    p = tmp_path / "log.jsonl"
    append_jsonl(p, {"i": 0})
    with open(p, "a") as f:
        f.write('{"i": 1, "x"')  # kill -9 mid-append
    append_jsonl(p, {"i": 2})
    assert "torn last line" in capsys.readouterr().err
    assert read_jsonl(p) == [{"i": 0}, {"i": 2}]  # strict read: no malformed middle line left behind


def test_append_after_whole_line_without_newline_keeps_it(tmp_path, capsys):
    p = tmp_path / "log.jsonl"
    p.write_text('{"i": 0}')
    append_jsonl(p, {"i": 1})
    assert read_jsonl(p) == [{"i": 0}, {"i": 1}]
    assert capsys.readouterr().err == ""


def test_callers_user_task_data_is_strict(tmp_path):
    """A few-shot task's data file is the user's: a cut-off last example is an error, not one example fewer."""
    import json

    import yaml

    from lmlab.evals.fewshot.tasks import get_task

    docs = [{"q": f"q{i}", "choices": ["a", "b"], "label": 0} for i in range(3)]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs) + '{"q": "q3", "cho')
    (tmp_path / "task.yaml").write_text(yaml.safe_dump({
        "name": "t", "output_type": "multiple_choice", "template": "Q: {q}\nA:", "choices": "choices",
        "gold": "label", "fewshot_split": "test", "data": {"test": "test.jsonl"}}))
    with pytest.raises(DataError, match=r"test\.jsonl:4 is not valid JSON"):
        get_task(str(tmp_path / "task.yaml")).docs("test")


def test_callers_own_metrics_log_tolerates_a_torn_tail(tmp_path, capsys):
    """The loss plot reads lmlab's own metrics.jsonl: a torn last row (a killed run) is dropped and reported."""
    from lmlab.report.plots import loss_curve

    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1, "loss": 5.0}\n{"step": 2, "loss": 4.0}\n{"step": 3, "lo')
    assert loss_curve(p, tmp_path / "l.png").is_file()
    assert "metrics.jsonl:3: dropped a torn last line" in capsys.readouterr().err


def test_with_placeholders_names_nested_paths_longest_first():
    from lmlab.io import with_placeholders

    obj = {"store": "/m/stores/l15", "run": "/m/stores/l15/runs/a", "cmd": "x --out /m/stores/l15/runs/a/b", "n": 3}
    out = with_placeholders(obj, {"/m/stores/l15": "STORE", "/m/stores/l15/runs/a": "RUN"})
    assert out == {"store": "STORE", "run": "RUN", "cmd": "x --out RUN/b", "n": 3}
