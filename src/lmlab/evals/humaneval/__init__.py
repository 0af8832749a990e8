"""HumanEval: sandboxed execution with verdicts decided outside the candidate, exact pass@k, sampling."""
