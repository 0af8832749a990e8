"""The three request types of few-shot evaluation, run on any HF causal LM lmlab loads.

- `loglikelihood(context, continuation)` -> (sum log p, is_greedy, n_tokens): the score of a continuation given
  a context (GPT-3 §2.4 multiple choice / cloze; lm-eval's `loglikelihood`).
- `loglikelihood_rolling(text)` -> (sum log p, n_tokens): every token of a document scored exactly once, in
  windows of at most `max_length` tokens (lm-eval's `get_rolling_token_windows` rule), for perplexity/bpb.
- `generate_until(context, until)` -> text: greedy, sampled, or beam search (GPT-3 used width 4, length
  penalty 0.6 for free-form answers), cut at the first stop string.

Tokenisation follows lm-eval's `TemplateLM._encode_pair` exactly (trailing context spaces move into the
continuation; the pair is encoded jointly and the context's own token count is sliced off), so raw scores match
lm-eval's `acc` request for request.

Speed (the point of this module): requests are grouped by context, and each distinct context is run through the
model ONCE; its KV cache is then gathered once per continuation and only the continuation tokens are run
(shared-prefix batching). Single-token continuations need no second pass at all. Contexts are batched
longest-first, right-padded (padding never precedes a real token, so no query row is fully masked), and
log-softmax is taken in fp32. Scores are invariant to the batch size up to float round-off (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from lmlab.errors import UserError
from lmlab.progress import track

if TYPE_CHECKING:
    import torch


class ContextTooLong(UserError):
    """A request whose tokens do not fit the model's context window."""


class LLResult(NamedTuple):
    """One loglikelihood answer."""

    logprob: float
    """Sum of log p(continuation token | everything before it), natural log."""
    is_greedy: bool
    """True when every continuation token is the argmax of the model's distribution."""
    n_tokens: int
    """Number of continuation tokens (GPT-3's per-token normalisation divides by this)."""


class GenRequest(NamedTuple):
    """One generate-until request."""

    context: str
    until: tuple[str, ...] = ("\n",)
    max_gen_toks: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    num_beams: int = 1
    length_penalty: float = 1.0


class HFRunner:
    """Runs loglikelihood / rolling / generation requests on a HF causal LM (lmlab's `LM` engine)."""

    def __init__(self, model, tokenizer, batch_size: int = 16, max_length: int | None = None,
                 progress: bool = False):
        self.model, self.tok, self.batch_size, self.progress = model, tokenizer, batch_size, progress
        cfg_len = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_length = min(max_length or cfg_len, cfg_len)
        bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.prefix_id = bos if bos is not None else eos  # lm-eval's prefix_token_id for empty contexts
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
        self.forward_passes = 0  # model calls made so far (what the shared prefix saves)

    @property
    def device(self):
        return next(self.model.parameters()).device

    # --- tokenisation (lm-eval's rule) --------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) as lm-eval's TemplateLM._encode_pair + empty-context prefix."""
        if not context:
            return [self.prefix_id], self.encode(continuation)
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx):]

    # --- loglikelihood ------------------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LLResult]:
        """Score each (context, continuation) pair; one forward per distinct context."""
        return self.loglikelihood_tokens([self.encode_pair(c, x) for c, x in requests])

    def loglikelihood_tokens(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[LLResult]:
        """Token-level core: identical requests computed once, then grouped by context ids."""
        unique: dict[tuple, int] = {}
        where = [unique.setdefault((tuple(c), tuple(x)), len(unique)) for c, x in pairs]
        res = self._loglikelihood_unique([(list(c), list(x)) for c, x in unique])
        return [res[w] for w in where]

    def _loglikelihood_unique(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[LLResult]:
        """Group by context ids, longest first, batch_size contexts per forward."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (ctx, cont) in enumerate(pairs):
            if not cont:
                raise ValueError(f"request {i}: empty continuation")
            if len(ctx) + len(cont) - 1 > self.max_length:
                raise ContextTooLong(f"request {i}: {len(ctx) + len(cont)} tokens > the model's "
                                     f"{self.max_length}", "use fewer shots or a shorter prompt")
            groups.setdefault(tuple(ctx), []).append(i)
        # longest total first (an out-of-memory shows up at once; similar lengths share a batch)
        order = sorted(groups, key=lambda c: -(len(c) + max(len(pairs[i][1]) for i in groups[c])))
        out: list[LLResult | None] = [None] * len(pairs)
        for b in track(range(0, len(order), self.batch_size), self.progress, "loglikelihood"):
            batch = order[b:b + self.batch_size]
            rows = [(k, i) for k, ctx in enumerate(batch) for i in groups[ctx]]
            scores = self._score_batch([list(c) for c in batch], [(k, pairs[i][1]) for k, i in rows])
            for (_, i), s in zip(rows, scores):
                out[i] = s
        return out  # type: ignore[return-value]

    def _score_batch(self, contexts: list[list[int]], rows: list[tuple[int, list[int]]]) -> list[LLResult]:
        """Pass 1: the contexts (right-padded) with a KV cache. Pass 2: every continuation on its context's cache."""
        import torch

        dev, B = self.device, len(contexts)
        lens = torch.tensor([len(c) for c in contexts], device=dev)
        Lc = int(lens.max())
        ids = torch.full((B, Lc), self.pad_id, dtype=torch.long, device=dev)
        mask = torch.zeros((B, Lc), dtype=torch.long, device=dev)
        for k, c in enumerate(contexts):
            ids[k, :len(c)] = torch.tensor(c, device=dev)
            mask[k, :len(c)] = 1
        pos = torch.arange(Lc, device=dev).expand(B, Lc)
        need_pass2 = any(len(cont) > 1 for _, cont in rows)
        last = lens - 1  # (B,) position of each context's last real token
        keep = torch.unique(last)  # logits only where some context ends (not (B, Lc, V))
        with torch.inference_mode():
            o1 = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=need_pass2,
                            logits_to_keep=keep)
            self.forward_passes += 1
            col = torch.searchsorted(keep, last)
            first = o1.logits[torch.arange(B, device=dev), col].float().log_softmax(-1)  # (B, V) fp32
            rest = self._continuations(o1.cache, mask, lens, rows) if need_pass2 else None
        results = []
        for r, (k, cont) in enumerate(rows):
            lp = float(first[k, cont[0]])
            greedy = int(first[k].argmax()) == cont[0]
            if len(cont) > 1:
                tgt = torch.tensor(cont[1:], device=dev)
                lps = rest[r, :len(cont) - 1]  # (T-1, V): position t predicts continuation token t+1
                lp += float(lps.gather(1, tgt[:, None]).sum())
                greedy = greedy and bool((lps.argmax(-1) == tgt).all())
            results.append(LLResult(lp, greedy, len(cont)))
        return results

    def _continuations(self, cache, mask: torch.Tensor, lens: torch.Tensor, rows) -> torch.Tensor:
        """Run cont[:-1] of every row on a copy of its context's cache; returns fp32 log-probs (R, Lk, V)."""
        import torch

        dev, R = self.device, len(rows)
        Lk = max(len(cont) for _, cont in rows) - 1
        src = torch.tensor([k for k, _ in rows], device=dev)
        ids = torch.full((R, max(Lk, 1)), self.pad_id, dtype=torch.long, device=dev)
        cmask = torch.zeros((R, max(Lk, 1)), dtype=torch.long, device=dev)
        for r, (_, cont) in enumerate(rows):
            if len(cont) > 1:
                ids[r, :len(cont) - 1] = torch.tensor(cont[:-1], device=dev)
                cmask[r, :len(cont) - 1] = 1
        cache.batch_select_indices(src)  # (B, ...) -> (R, ...): one cache row per continuation
        full_mask = torch.cat([mask[src], cmask], dim=1)  # context padding stays masked
        pos = lens[src, None] + torch.arange(ids.shape[1], device=dev)  # continue each context's positions
        o2 = self.model(input_ids=ids, attention_mask=full_mask, position_ids=pos, cache=cache,
                        use_cache=False)
        self.forward_passes += 1
        return o2.logits.float().log_softmax(-1)

    # --- rolling loglikelihood ----------------------------------------------------------------------------

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """(sum log p, n tokens) of whole documents; each token scored once, windows of <= max_length."""
        pairs, owner = [], []
        for d, text in enumerate(texts):
            for ctx, pred in rolling_windows(self.encode(text), self.prefix_id, self.max_length):
                pairs.append((ctx, pred))
                owner.append(d)
        res = self.loglikelihood_tokens(pairs)
        out = [[0.0, 0] for _ in texts]
        for d, r in zip(owner, res):
            out[d][0] += r.logprob
            out[d][1] += r.n_tokens
        return [(lp, n) for lp, n in out]

    # --- generation ---------------------------------------------------------------------------------------

    def generate_until(self, requests: Sequence[GenRequest], seed: int = 1234) -> list[str]:
        """Greedy / sampled / beam generation, batched by identical settings, longest context first."""
        import torch

        out: list[str | None] = [None] * len(requests)
        keyed: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            keyed.setdefault(r[1:], []).append(i)
        for idx in keyed.values():
            idx = sorted(idx, key=lambda i: -len(requests[i].context))
            for b in track(range(0, len(idx), self.batch_size), self.progress, "generate"):
                chunk = idx[b:b + self.batch_size]
                torch.manual_seed(seed + b)  # sampling is reproducible per batch position
                texts = self._generate([requests[i].context for i in chunk], requests[chunk[0]])
                for i, t in zip(chunk, texts):
                    out[i] = t
        return out  # type: ignore[return-value]

    def _generate(self, contexts: list[str], r: GenRequest) -> list[str]:
        import torch

        enc = [self.encode(c) or [self.prefix_id] for c in contexts]
        limit = self.max_length - r.max_gen_toks
        for i, e in enumerate(enc):
            if len(e) > limit:
                raise ContextTooLong(f"generation context {i}: {len(e)} tokens + {r.max_gen_toks} to generate "
                                     f"> the model's {self.max_length}", "use fewer shots or a shorter prompt")
        L = max(len(e) for e in enc)
        ids = torch.full((len(enc), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(enc), L), dtype=torch.long)
        for k, e in enumerate(enc):  # left padding: generation appends on the right
            ids[k, L - len(e):] = torch.tensor(e)
            mask[k, L - len(e):] = 1
        kw = dict(max_new_tokens=r.max_gen_toks, do_sample=r.do_sample, num_beams=r.num_beams,
                  pad_token_id=self.pad_id, stopping_criteria=_stop_on(self.tok, r.until, L))
        if r.do_sample:
            kw.update(temperature=r.temperature, top_k=0, top_p=1.0)
        if r.num_beams > 1:
            kw.update(length_penalty=r.length_penalty, early_stopping=True)
        with torch.inference_mode():
            gen = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kw)
        self.forward_passes += 1
        texts = self.tok.batch_decode(gen[:, L:], skip_special_tokens=True)
        return [cut_at_stop(t, r.until) for t in texts]


def _stop_on(tok, until: Sequence[str], start: int):
    """A StoppingCriteria: a row is done once its generated text contains a stop string.

    (transformers' `stop_strings` builds tables over the whole vocabulary on every call: seconds per batch.)"""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tok.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in until if s) for t in texts], device=input_ids.device)

    return StoppingCriteriaList([_Stop()] if until else [])


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """Text before the first occurrence of any stop string."""
    for s in until:
        if s and s in text:
            text = text[:text.index(s)]
    return text


def rolling_windows(tokens: list[int], prefix_id: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """Disjoint (context, predicted) windows covering `tokens` once (lm-eval `get_rolling_token_windows`,
    context_len=1): the first window is conditioned on the prefix token, later ones on the tokens before them,
    each input at most `max_len` tokens long."""
    out = []
    for start in range(0, len(tokens), max_len):
        pred = tokens[start:start + max_len]
        end = start + len(pred)
        ctx = [prefix_id] if start == 0 else tokens[max(0, end - max_len - 1):start]
        out.append((ctx, pred))
    return out
