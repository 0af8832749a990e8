"""Few-shot tasks: a small spec (YAML) + JSONL data, and a registry that fails loudly.

A task is a `TaskSpec` (prompt template, answer field or choices, separators, scoring, few-shot source split)
plus its documents per split. Sources:

- built-in generated tasks (`generators.py`): GPT-3's arithmetic (2D+ ... 1DC) and word unscrambling (CL, A1,
  A2, RI, RW), a LAMBADA-style cloze on the embedded corpus's held-out split, and a multiple-choice task on the
  embedded corpus's domain labels;
- YAML specs shipped in `tasks/` next to this file;
- any user YAML file passed as the task name (`--task path/to/task.yaml`), with `data: {split: file.jsonl}`
  relative to the YAML. Nothing is ever fetched from a hub.

Unlike lm-eval's registry (broken YAML configs skipped with a warning, lm-eval #635/#1317), a broken spec is an
error naming the file and the problem, and an unknown task lists what exists.

Templates are Python `str.format` strings over a document's fields: `"Q: {question}\\n\\nA:"`.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from lmlab.errors import UserError

OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "generate_until", "loglikelihood_rolling")
TASKS_DIR = Path(__file__).parent / "tasks"


class TaskError(UserError):
    """A task spec or task document that cannot be used (names the task and the example)."""


@dataclass
class TaskSpec:
    """How to turn a document into a prompt, what to score, and where few-shot examples come from."""

    name: str
    """Registry name of the task."""
    output_type: Literal["multiple_choice", "loglikelihood", "generate_until", "loglikelihood_rolling"]
    """multiple_choice: compare log p(choice | prompt); loglikelihood: is the gold continuation greedy (cloze);
    generate_until: generate and compare (exact match / F1); loglikelihood_rolling: perplexity of the text."""
    template: str = "{text}"
    """Prompt for one document, a str.format template over its fields."""
    target: str = "{answer}"
    """Gold continuation (loglikelihood / generate_until / few-shot answers of the other types), a template."""
    choices: str = "choices"
    """multiple_choice: the document field holding the list of choice strings."""
    gold: str = "label"
    """multiple_choice: the document field holding the index of the right choice."""
    description: str = ""
    """Natural-language instruction put once before the examples (GPT-3 App. G)."""
    target_delimiter: str = " "
    """Between a prompt and its answer (GPT-3: a space; the answer tokens carry it)."""
    fewshot_delimiter: str = "\n\n"
    """Between consecutive examples (GPT-3: one or two newlines by task)."""
    fewshot_split: str = "train"
    """Split the K demonstrations are drawn from (GPT-3: train, or dev when there is no train split)."""
    eval_split: str = "test"
    """Split that is evaluated."""
    until: list[str] = field(default_factory=lambda: ["\n"])
    """generate_until: stop strings."""
    max_gen_toks: int = 32
    """generate_until: most tokens generated per example."""
    answer_context: str = "Answer:"
    """Unconditional normalisation: score P(choice | prompt) / P(choice | answer_context) (GPT-3 ARC/OBQA/RACE)."""
    primary_metric: str = "acc"
    """The metric a learning curve or a summary reports first."""
    data: dict[str, str] = field(default_factory=dict)
    """split -> JSONL path (YAML tasks; relative paths are relative to the YAML file)."""

    def __post_init__(self):
        if self.output_type not in OUTPUT_TYPES:
            raise TaskError(f"task {self.name}: unknown output_type {self.output_type!r}",
                            f"use one of {', '.join(OUTPUT_TYPES)}")


class Task:
    """A spec plus a loader of its documents by split (loaded once, on first use)."""

    def __init__(self, spec: TaskSpec, load: Callable[[str], list[dict]]):
        self.spec, self._load, self._cache = spec, load, {}

    @property
    def name(self) -> str:
        return self.spec.name

    def docs(self, split: str) -> list[dict]:
        if split not in self._cache:
            self._cache[split] = self._load(split)
        return self._cache[split]

    def prompt(self, doc: dict, i: int) -> str:
        return render(self.spec.template, doc, self.name, i)

    def target(self, doc: dict, i: int) -> str:
        """Gold answer text of a document (for MC: the gold choice)."""
        if self.spec.output_type == "multiple_choice":
            return self.choice_list(doc, i)[self.gold_index(doc, i)]
        return render(self.spec.target, doc, self.name, i)

    def choice_list(self, doc: dict, i: int) -> list[str]:
        c = doc.get(self.spec.choices)
        if not isinstance(c, list) or len(c) < 2 or not all(isinstance(x, str) for x in c):
            raise TaskError(f"task {self.name}, example {i}: field '{self.spec.choices}' must be a list of >= 2 "
                            f"choice strings (got {type(c).__name__})", "fix the data or the spec's `choices`")
        return c

    def gold_index(self, doc: dict, i: int) -> int:
        g = doc.get(self.spec.gold)
        n = len(self.choice_list(doc, i))
        if not isinstance(g, int) or not 0 <= g < n:
            raise TaskError(f"task {self.name}, example {i}: gold field '{self.spec.gold}' = {g!r} is not a "
                            f"choice index in [0, {n})", "fix the data or the spec's `gold`")
        return g


def render(template: str, doc: dict, task: str, i: int) -> str:
    """str.format over a document, with an error naming the task, the example and the missing field."""
    missing = [f for f in template_fields(template) if f not in doc]
    if missing:
        raise TaskError(f"task {task}, example {i}: template field(s) {', '.join(missing)} missing from the "
                        f"document (it has {', '.join(sorted(doc)) or 'no fields'})",
                        "fix the template or the data")
    return template.format(**doc)


def template_fields(template: str) -> list[str]:
    return [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f]


# --- registry -------------------------------------------------------------------------------------------

_BUILTIN: dict[str, Callable[[], Task]] = {}


def register(*names: str):
    """Register a zero-argument Task factory under `names` (a collision is a bug, raised at import)."""

    def deco(fn):
        for n in names:
            if n in _BUILTIN:
                raise RuntimeError(f"few-shot task {n!r} registered twice")
            _BUILTIN[n] = (lambda n=n: fn(n))
        return fn

    return deco


def task_names() -> list[str]:
    """Every task: built-ins, then the YAML specs shipped in `tasks/` (each must parse)."""
    from lmlab.evals.fewshot import generators  # noqa: F401  (registers the built-ins)

    return list(_BUILTIN) + sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def get_task(name: str) -> Task:
    """A built-in task, a shipped YAML task, or a path to a user YAML spec."""
    from lmlab.evals.fewshot import generators  # noqa: F401

    if name in _BUILTIN:
        return _BUILTIN[name]()
    if (shipped := TASKS_DIR / f"{name}.yaml").is_file():
        return load_task_file(shipped)
    if name.endswith((".yaml", ".yml")):
        return load_task_file(Path(name))
    raise TaskError(f"unknown few-shot task {name!r}",
                    f"available: {', '.join(task_names())}; or pass a path to a task .yaml")


def load_task_file(path: Path) -> Task:
    """A YAML spec (TaskSpec fields) whose `data` maps splits to JSONL files."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise TaskError(f"task spec {path} does not exist", "pass an existing .yaml file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TaskError(f"task spec {path} is not valid YAML ({e})", "fix the file") from e
    if not isinstance(raw, dict):
        raise TaskError(f"task spec {path} must be a mapping of TaskSpec fields", "see docs/fewshot.md")
    known = {f.name for f in fields(TaskSpec)}
    if bad := sorted(set(raw) - known):
        raise TaskError(f"task spec {path}: unknown field(s) {', '.join(bad)}", f"known: {', '.join(sorted(known))}")
    raw.setdefault("name", path.stem)
    if "output_type" not in raw:
        raise TaskError(f"task spec {path}: output_type is required", f"one of {', '.join(OUTPUT_TYPES)}")
    spec = TaskSpec(**raw)
    data = {s: (path.parent / p) for s, p in spec.data.items()}
    for split in {spec.eval_split, spec.fewshot_split}:
        if split not in data:
            raise TaskError(f"task {spec.name}: no data file for split '{split}' in {path}",
                            f"add `data: {{{split}: file.jsonl}}`")
        if not data[split].is_file():
            raise TaskError(f"task {spec.name}: data file {data[split]} does not exist", "fix `data` in the spec")

    def load(split: str) -> list[dict]:
        from lmlab.io import read_jsonl

        if split not in data:
            raise TaskError(f"task {spec.name}: no split '{split}'", f"splits: {', '.join(data)}")
        docs = read_jsonl(data[split], own_log=False)  # user data: every line counts
        for i, d in enumerate(docs):
            if not isinstance(d, dict):
                raise TaskError(f"task {spec.name}, example {i} of {data[split].name} is not a JSON object",
                                "one JSON object per line")
        return docs

    return Task(spec, load)
