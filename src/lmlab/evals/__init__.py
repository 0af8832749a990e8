"""Evaluations: HumanEval (sandboxed execution, pass@k) and few-shot in-context evaluation (GPT-3)."""
