"""Sample HumanEval completions from a model (Codex protocol, Chen et al. 2021 §3.2), then execute them.

Backends: `hf` (any model lmlab loads; batched `generate` over several problems, left padding) and `openai`
(an OpenAI-compatible `/v1/completions` server such as vLLM). Each sample records its mean token log-prob
under the model at temperature 1 (raw logits) over the tokens that make up the kept completion, so the
paper's ranking heuristic (Fig. 7: pick the highest mean log-prob) can be scored.

The output directory is resumable: samples.jsonl is appended per finished batch; a restart generates only
the missing samples (each batch is seeded from the base seed and its first sample's identity).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from lmlab.errors import ConfigError, ResumeMismatch
from lmlab.evals.humaneval.run import EvalConfig

STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]  # Codex §3.2


@dataclasses.dataclass
class SampleConfig:
    model: str = "smollm2"
    """Model spec (smollm2 | local HF dir | lmlab run dir | hub id), or the model name sent to the server."""
    n: int = 10
    """Samples per problem."""
    temperature: float = 0.8
    """Sampling temperature; 0 = greedy (then n should be 1)."""
    top_p: float = 0.95
    """Nucleus mass (Codex uses 0.95 for all sampling)."""
    max_new_tokens: int = 256
    """Cap on generated tokens per sample; the stop sequences end most samples earlier."""
    batch_size: int = 64
    """Rows per generate call (several problems' samples share a batch)."""
    limit: int = 0
    """Evaluate only the first N problems (0 = all)."""
    seed: int = 0
    """Base seed; each problem's samples use seed + problem index."""
    stop: list[str] = dataclasses.field(default_factory=lambda: list(STOP))
    """Stop sequences (Codex's five); the completion is cut before the first one."""
    backend: str = "hf"
    """hf | openai."""
    base_url: str = ""
    """OpenAI-compatible server root for backend=openai, e.g. http://127.0.0.1:8000/v1."""
    dtype: str = "float32"
    """Weights dtype for backend=hf."""
    device: str = "auto"
    """auto | cpu | cuda."""
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    """How the samples are executed and scored."""

    def __post_init__(self):
        if self.n < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("n, max_new_tokens and batch_size must be >= 1", "e.g. --n 10 --batch-size 64")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ConfigError(f"temperature={self.temperature}, top_p={self.top_p} out of range",
                              "temperature >= 0, 0 < top_p <= 1")
        if self.backend not in ("hf", "openai"):
            raise ConfigError(f"unknown backend {self.backend!r}", "use hf or openai")
        if self.backend == "openai" and not self.base_url:
            raise ConfigError("backend=openai needs --base-url", "e.g. --base-url http://127.0.0.1:8000/v1")


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The completion before the first stop sequence (the whole text if none occurs)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


# --- backends ---------------------------------------------------------------------------------------------


class HFBackend:
    """Batched sampling with transformers' generate; left padding lets several prompts share a batch."""

    def __init__(self, cfg: SampleConfig):
        import torch

        from lmlab.models import load_causal_lm

        device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
        self.model, self.tok = load_causal_lm(cfg.model, dtype=cfg.dtype, device=device)
        self.tok.padding_side = "left"
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.cfg, self.device = cfg, device

    def generate(self, prompts: list[str], seeds: list[int]) -> list[dict]:
        """One sample per prompt (prompts repeat for n > 1): {"completion", "mean_logprob", "n_tokens"}."""
        import torch

        cfg, tok = self.cfg, self.tok
        enc = tok(prompts, return_tensors="pt", padding=True).to(self.device)
        torch.manual_seed(seeds[0])  # generate has one RNG stream per call; the batch's first seed fixes it
        kw = {"do_sample": cfg.temperature > 0, "max_new_tokens": cfg.max_new_tokens, "pad_token_id": tok.pad_token_id,
              "stop_strings": cfg.stop, "tokenizer": tok, "return_dict_in_generate": True, "output_logits": True,
              "top_k": 0, "repetition_penalty": 1.0}
        if cfg.temperature > 0:
            kw.update(temperature=cfg.temperature, top_p=cfg.top_p)
        with torch.no_grad():
            out = self.model.generate(**enc, **kw)
        gen = out.sequences[:, enc["input_ids"].shape[1]:]  # (B, T) generated ids, pad after a row stops
        lp = torch.stack([  # (B, T) log-prob of each chosen token under the raw logits (temperature 1)
            step.float().gather(-1, gen[:, t, None])[:, 0] - torch.logsumexp(step.float(), dim=-1)
            for t, step in enumerate(out.logits)], dim=1).cpu()  # each step: (B, V)
        return [self._row(gen[i].tolist(), lp[i]) for i in range(len(prompts))]

    def _row(self, ids: list[int], lp) -> dict:
        tok = self.tok
        if tok.eos_token_id in ids:
            ids = ids[: ids.index(tok.eos_token_id)]
        full = tok.decode(ids, skip_special_tokens=True)
        completion = cut_at_stop(full, self.cfg.stop)
        lo, hi = 0, len(ids)  # smallest m with len(decode(ids[:m])) >= len(completion): tokens it spans
        while lo < hi:
            mid = (lo + hi) // 2
            if len(tok.decode(ids[:mid], skip_special_tokens=True)) >= len(completion):
                hi = mid
            else:
                lo = mid + 1
        m = max(1, min(lo, len(ids))) if ids else 0
        mean = float(lp[:m].mean()) if m else None
        return {"completion": completion, "mean_logprob": mean, "n_tokens": m}


class OpenAIBackend:
    """POST {base_url}/completions (OpenAI legacy completions API, as served by vLLM), stdlib only."""

    def __init__(self, cfg: SampleConfig):
        self.cfg = cfg

    def generate(self, prompts: list[str], seeds: list[int]) -> list[dict]:
        where: dict[str, list[int]] = {}  # identical prompts of the batch -> one request with n
        for i, p in enumerate(prompts):
            where.setdefault(p, []).append(i)
        out: list = [None] * len(prompts)
        for p, idx in where.items():
            for i, row in zip(idx, self._request(p, len(idx), seeds[idx[0]])):
                out[i] = row
        return out

    def _request(self, prompt: str, n: int, seed: int) -> list[dict]:
        import urllib.error
        import urllib.request

        cfg = self.cfg
        body = {"model": cfg.model, "prompt": prompt, "n": n, "temperature": cfg.temperature, "top_p": cfg.top_p,
                "max_tokens": cfg.max_new_tokens, "stop": cfg.stop, "logprobs": 1, "seed": seed}
        req = urllib.request.Request(cfg.base_url.rstrip("/") + "/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                resp = json.loads(r.read())
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"completion server at {cfg.base_url} failed ({e})", "is the server running?") from e
        rows = []
        for ch in sorted(resp["choices"], key=lambda c: c.get("index", 0)):
            lps = [x for x in ((ch.get("logprobs") or {}).get("token_logprobs") or []) if x is not None]
            rows.append({"completion": cut_at_stop(ch["text"], cfg.stop),
                         "mean_logprob": sum(lps) / len(lps) if lps else None, "n_tokens": len(lps)})
        return rows


# --- the sampling run -------------------------------------------------------------------------------------


def _check_resume(cfg: SampleConfig, out: Path) -> None:
    from lmlab.config import to_dict
    from lmlab.io import read_json, write_json

    mine = to_dict(cfg)
    path = out / "config.json"
    if path.is_file():
        old = read_json(path)
        keys = ("model", "temperature", "top_p", "max_new_tokens", "seed", "stop", "backend")
        diff = [k for k in keys if old.get(k) != mine.get(k)]
        if diff:
            raise ResumeMismatch(f"{out} holds samples made with different {', '.join(diff)}",
                                 "use a new --out directory (or the same settings to resume)")
    write_json(path, mine)


def generate_samples(cfg: SampleConfig, out: Path, problems: dict[str, dict], progress: bool = False) -> list[dict]:
    """Append missing samples to out/samples.jsonl (n per problem) and return all of them."""
    from lmlab.io import append_jsonl, read_jsonl

    path = out / "samples.jsonl"
    have = read_jsonl(path) if path.is_file() else []
    count: dict[str, int] = {}
    for row in have:
        count[row["task_id"]] = count.get(row["task_id"], 0) + 1
    todo = [(t, idx, count.get(t, 0) + j) for idx, t in enumerate(problems)
            for j in range(max(0, cfg.n - count.get(t, 0)))]  # (task, problem index, sample index)
    # round-robin over problems: an interrupted run leaves every problem with about the same n
    todo.sort(key=lambda x: (x[2], x[1]))
    if todo:
        backend = HFBackend(cfg) if cfg.backend == "hf" else OpenAIBackend(cfg)
        from lmlab.progress import counter

        with counter(progress, len(todo), "sampling") as bar:
            for b in range(0, len(todo), cfg.batch_size):
                chunk = todo[b: b + cfg.batch_size]
                rows = backend.generate([problems[t]["prompt"] for t, _, _ in chunk],
                                        [cfg.seed * 1_000_003 + i * 1009 + s for _, i, s in chunk])
                for (t, _, s), row in zip(chunk, rows):
                    rec = {"task_id": t, "sample": s, **row}
                    append_jsonl(path, rec)
                    have.append(rec)
                    bar()
    order = {t: i for i, t in enumerate(problems)}
    return sorted((r for r in have if r["task_id"] in order), key=lambda r: (order[r["task_id"]], r["sample"]))


def _start(cfg: SampleConfig, out: str | Path) -> tuple[Path, dict]:
    """Create OUT, refuse a resume with other settings, load the (first `limit`) problems."""
    from lmlab.evals.humaneval import data

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(cfg, out)
    problems = data.load_problems(cfg.eval.problems or None)
    if cfg.limit:
        problems = dict(list(problems.items())[: cfg.limit])
    return out, problems


def generate_only(cfg: SampleConfig, out: str | Path, progress: bool = False) -> dict:
    """Sample (resumably) without executing: generate on a GPU machine, execute elsewhere."""
    out, problems = _start(cfg, out)
    samples = generate_samples(cfg, out, problems, progress)
    return {"n_samples": len(samples), "n_problems": len(problems), "samples_file": str(out / "samples.jsonl")}


def sample_and_evaluate(cfg: SampleConfig, out: str | Path, progress: bool = False) -> dict:
    """Sample (resumably), execute, and write out/results.jsonl + out/summary.json (pass@k, reranked pass@1)."""
    from lmlab.evals.humaneval import passk
    from lmlab.evals.humaneval.run import evaluate
    from lmlab.io import atomic_path, write_json

    out, problems = _start(cfg, out)
    samples = generate_samples(cfg, out, problems, progress)
    rows, summary = evaluate(samples, problems, cfg.eval, progress)
    with atomic_path(out / "results.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary["reranked_pass@1"] = passk.reranked_pass1(_rerank(rows), cfg.eval.n_boot, cfg.eval.seed)
    summary.update({"model": cfg.model, "temperature": cfg.temperature, "top_p": cfg.top_p, "n": cfg.n,
                    "mean_tokens": sum(r["n_tokens"] for r in rows) / max(1, len(rows))})
    write_json(out / "summary.json", summary)
    from lmlab.evals.humaneval.report import plot_summaries

    plot_summaries({f"{cfg.model} T={cfg.temperature} n={cfg.n}": summary}, out / "passk.png")
    return summary


def _rerank(rows: list[dict]) -> dict[str, bool]:
    """Per problem: did the sample with the highest mean token log-prob pass? (NaN ranks last.)"""
    best: dict[str, tuple[float, bool]] = {}
    for r in rows:
        lp = r.get("mean_logprob")
        score = lp if isinstance(lp, (int, float)) else float("-inf")
        if r["task_id"] not in best or score > best[r["task_id"]][0]:
            best[r["task_id"]] = (score, r["passed"])
    return {t: p for t, (_, p) in best.items()}
