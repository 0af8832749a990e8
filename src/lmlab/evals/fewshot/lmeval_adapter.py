"""An lm-evaluation-harness `LM` backed by lmlab's request engine, so lm-eval users can run lmlab models.

    from lmlab.evals.fewshot.lmeval_adapter import LmlabLM
    lm = LmlabLM.from_spec("smollm2")                      # or LmlabLM(model, tokenizer)
    lm_eval.simple_evaluate(model=lm, tasks=[...], task_manager=lm_eval.tasks.TaskManager(include_path=...))

or from the command line after `register()`: `--model lmlab --model_args spec=smollm2,batch_size=16`.
lm_eval is an optional dependency (the `bench` extra) and is imported only here, lazily.
"""

from __future__ import annotations

from typing import Any


def lm_class():
    """The adapter class (built on first use so that importing this module does not import lm_eval)."""
    global _CLS
    if _CLS is not None:
        return _CLS
    try:
        from lm_eval.api.model import LM
    except ImportError as e:  # pragma: no cover - depends on the environment
        from lmlab.errors import UserError

        raise UserError("lm-eval is not installed", "pip install 'lm-eval==0.4.13' (lmlab's bench extra)") from e

    from lmlab.evals.fewshot.runner import GenRequest, HFRunner

    class LmlabLM(LM):
        """lm-eval's three request types answered by `HFRunner` (shared-prefix batching, fp32 log-softmax)."""

        def __init__(self, model, tokenizer, batch_size: int = 16, max_length: int | None = None):
            super().__init__()
            self.runner = HFRunner(model, tokenizer, batch_size=int(batch_size), max_length=max_length)

        @classmethod
        def from_spec(cls, spec: str = "smollm2", **kw: Any):
            from lmlab.models import load_causal_lm

            model, tok = load_causal_lm(spec)
            return cls(model, tok, **kw)

        @classmethod
        def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
            args = dict(kv.split("=", 1) for kv in arg_string.split(",") if kv)
            bs = (additional_config or {}).get("batch_size") or args.pop("batch_size", 16)
            return cls.from_spec(args.pop("spec", "smollm2"), batch_size=int(bs))

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            res = self.runner.loglikelihood([r.args for r in requests])
            return [(r.logprob, r.is_greedy) for r in res]

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return [lp for lp, _ in self.runner.loglikelihood_rolling([r.args[0] for r in requests])]

        def generate_until(self, requests, disable_tqdm: bool = False):
            reqs = []
            for r in requests:
                context, kw = r.args
                until = kw.get("until") or []
                until = (until,) if isinstance(until, str) else tuple(until)
                reqs.append(GenRequest(context, until, int(kw.get("max_gen_toks", 256)),
                                       bool(kw.get("do_sample", False)), float(kw.get("temperature", 1.0) or 1.0)))
            return self.runner.generate_until(reqs)

    _CLS = LmlabLM
    return LmlabLM


_CLS = None


def register(name: str = "lmlab") -> None:
    """Register the adapter in lm-eval's model registry (for `--model lmlab`)."""
    from lm_eval.api.registry import register_model

    register_model(name)(lm_class())


def __getattr__(name: str):  # `from lmlab.evals.fewshot.lmeval_adapter import LmlabLM`
    if name == "LmlabLM":
        return lm_class()
    raise AttributeError(name)


def write_lmeval_task(task, folder, limit: int | None = None) -> str:
    """Export an lmlab multiple-choice task as JSONL + an lm-eval YAML (`dataset_path: json`, fully offline).

    Returns the lm-eval task name. Only plain `{field}` templates translate (to Jinja `{{field}}`)."""
    import json
    import re
    from pathlib import Path

    import yaml

    from lmlab.errors import UserError

    spec = task.spec
    if spec.output_type != "multiple_choice":
        raise UserError(f"task {task.name}: only multiple_choice tasks export to lm-eval", "pick an MC task")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    docs = task.docs(spec.eval_split)[:limit] if limit else task.docs(spec.eval_split)
    data = folder / f"{task.name}.jsonl"
    data.write_text("".join(json.dumps({"text": task.prompt(d, i), "choices": task.choice_list(d, i),
                                        "label": task.gold_index(d, i)}) + "\n" for i, d in enumerate(docs)))
    name = "lmlab_" + re.sub(r"\W", "_", task.name)
    cfg = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
           "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "{{text}}",
           "doc_to_choice": "{{choices}}", "doc_to_target": "label", "target_delimiter": spec.target_delimiter,
           "fewshot_delimiter": spec.fewshot_delimiter, "description": spec.description,
           "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                           for m in ("acc", "acc_norm")]}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return name
