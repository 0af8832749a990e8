"""Token labels from SAE latents (Rathi & Radford 2026 §5.1; token_filtering_sae.md §2.2), without an LLM.

1. Concept latents: per latent, the document-level mean activation of documents of a labelled domain (e.g. the
   embedded corpus's medical entries) vs the rest; the latents with the highest AUC on a training half of the
   documents are chosen, and the same AUCs on the held-out half check the choice (`choose_latents`).
2. Thresholds: per chosen latent, mean + 4 SD of its activation over a background sample of tokens (BOS and
   other special tokens excluded: they are never in a store).
3. The rule (`label_tokens`): a token is a seed when >= 2 chosen latents exceed their thresholds; then any
   unlabelled token with activation > 0 on >= 1 chosen latent next to a labelled token is labelled, repeated
   until nothing changes (span growth: "insert the catheter", not only "catheter"). Special tokens never are.
4. Transfer (`transfer_labels`): labels move to another tokenizer by character spans — a target token is
   positive when its span overlaps any positive source token's span (the paper's rule); `label_shard` writes
   the labelled documents in the target tokenizer as a token shard whose float16 side channel holds the labels
   (the format `lmlab lm train --set mask=...` and the distilled classifier read).
"""

from __future__ import annotations

import numpy as np
import torch


def auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC per column of scores (n_pos, m) vs (n_neg, m) via the rank-sum (Mann-Whitney U), ties averaged."""
    from scipy.stats import rankdata

    x = np.concatenate([pos, neg])
    r = rankdata(x, axis=0)
    n1, n0 = len(pos), len(neg)
    return (r[:n1].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def choose_latents(doc_acts: np.ndarray, is_domain: np.ndarray, n_latents: int = 8, seed: int = 0,
                   allowed: np.ndarray | None = None) -> dict:
    """Pick the latents whose per-document mean activation (docs, latents) best separates the domain's documents
    (is_domain (docs,) bool) from the rest, on a random half of the documents, among the `allowed` (latents,)
    bool (None: all); report their AUC on the other half. Raises a DataError when the domain or the rest is
    absent."""
    from lmlab.errors import DataError

    if is_domain.all() or not is_domain.any():
        raise DataError(f"the documents hold {int(is_domain.sum())} of {len(is_domain)} in the domain",
                        "label documents of the domain AND others (the rule needs both to choose latents)")
    rng = np.random.default_rng(seed)
    train = np.zeros(len(is_domain), dtype=bool)  # a stratified half: both halves hold both kinds of documents
    for group in (np.nonzero(is_domain)[0], np.nonzero(~is_domain)[0]):
        train[rng.permutation(group)[:(len(group) + 1) // 2]] = True
    if (is_domain & ~train).sum() == 0 or (~is_domain & ~train).sum() == 0:
        raise DataError(f"too few documents to hold any out ({int(is_domain.sum())} in the domain, "
                        f"{int((~is_domain).sum())} others)", "label at least 2 documents of each kind")
    a_tr = auc(doc_acts[train & is_domain], doc_acts[train & ~is_domain])
    if allowed is not None:
        a_tr = np.where(allowed, a_tr, -np.inf)
    chosen = np.argsort(-a_tr)[:n_latents]
    chosen = chosen[np.isfinite(a_tr[chosen])]
    if not len(chosen):
        raise DataError("no latent passes the word-share filter", "lower --min-word-share (0 turns it off)")
    a_te = auc(doc_acts[~train & is_domain][:, chosen], doc_acts[~train & ~is_domain][:, chosen])
    return {"latents": chosen.tolist(), "train_auc": a_tr[chosen].tolist(), "heldout_auc": a_te.tolist(),
            "n_docs": int(len(is_domain)), "n_domain_docs": int(is_domain.sum())}


def word_share(rows: list[dict], texts: list[str], is_domain: np.ndarray) -> np.ndarray:
    """(n_latents,) share of each latent's activation mass on the domain's documents that falls on tokens
    holding a letter (rows as doc_latents returns them). A latent that fires mostly on punctuation and layout of
    the domain's documents — on a dictionary, the "(Med.)" subject tag's brackets and full stops — separates the
    documents well but labels format, not content: the paper removes such latents by their explanations (§5.1),
    this is an LLM-free stand-in."""
    n = rows[0]["latents"].shape[1] if rows else 0
    word, total = torch.zeros(n), torch.zeros(n)
    for r, text, dom in zip(rows, texts, is_domain):
        if dom:
            has_letter = torch.tensor([any(c.isalpha() for c in text[s:e]) for s, e in r["spans"]])
            word += r["latents"][has_letter].sum(0)
            total += r["latents"].sum(0)
    return (word / total.clamp_min(1e-12)).numpy()


def thresholds(background: torch.Tensor, sd: float = 4.0) -> torch.Tensor:
    """(m,) mean + sd * SD of each chosen latent's activation over background tokens (N, m)."""
    return background.float().mean(0) + sd * background.float().std(0)


def label_tokens(acts: torch.Tensor, thr: torch.Tensor, special: torch.Tensor | None = None,
                 min_latents: int = 2) -> torch.Tensor:
    """(T,) bool labels of one document from its chosen-latent activations (T, m): seeds where >= min_latents
    latents exceed thr (m,), grown over neighbours with activation > 0 on >= 1 latent until convergence;
    positions marked in `special` (T,) bool are never labelled."""
    never = special if special is not None else torch.zeros(len(acts), dtype=torch.bool)
    lab = ((acts > thr).sum(1) >= min_latents) & ~never
    grow = (acts > 0).any(1) & ~never
    while True:
        near = torch.zeros_like(lab)
        near[1:] |= lab[:-1]
        near[:-1] |= lab[1:]
        new = lab | (near & grow)
        if torch.equal(new, lab):
            return lab
        lab = new


def transfer_labels(src_spans: list[tuple[int, int]], src_labels, dst_spans: list[tuple[int, int]]) -> np.ndarray:
    """Labels for target tokens with character spans dst_spans: positive when the span overlaps a positive
    source span (half-open [start, end) character offsets into the same text)."""
    end = max([e for _, e in src_spans] + [e for _, e in dst_spans] + [0])
    marked = np.zeros(end + 1, dtype=np.int64)  # marked[c] = 1 when character c belongs to a positive token
    for (s, e), y in zip(src_spans, src_labels):
        if y:
            marked[s:e] = 1
    csum = np.concatenate([[0], np.cumsum(marked)])  # positives among characters [0, c)
    return np.array([csum[e] - csum[s] > 0 for s, e in dst_spans], dtype=bool)


def label_shard(docs: list[dict], tokenizer, path, domain: str | None = None) -> dict:
    """Labelled documents (dicts with text, spans, labels; optionally domain) -> a token shard at `path` (.bin +
    .side) in `tokenizer`'s ids: each document preceded by the tokenizer's end-of-text token (the layout `lmlab
    data prepare` writes), side channel 1.0 on tokens that overlap a positive source token, 0.0 elsewhere (the
    separators included). Only the text the source labelled is written (a document cut at the labeller's seq_len
    keeps its labelled prefix). Returns the target tokens' positive rates (per domain when `domain` is given)."""
    from lmlab.data.shards import write_shard
    from lmlab.data.tokenizer import Tokenizer

    tok = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.load(tokenizer)
    cut = [max((e for _, e in d["spans"]), default=0) for d in docs]
    encs = tok.backend.encode_batch([d["text"][:c] for d, c in zip(docs, cut)], add_special_tokens=False)
    ids, side, pos, n = [], [], {}, {}
    for d, e in zip(docs, encs):
        y = transfer_labels(d["spans"], d["labels"], [tuple(o) for o in e.offsets])
        ids += [tok.eot_id, *e.ids]
        side += [0.0, *y.astype(np.float32)]
        key = "all" if domain is None else ("domain" if d.get("domain") == domain else "other")
        pos[key], n[key] = pos.get(key, 0) + int(y.sum()), n.get(key, 0) + len(y)
    write_shard(path, np.asarray(ids, dtype=np.int64), tok.vocab_size, np.asarray(side, dtype=np.float32))
    return {"tokenizer": tok.name, "n_tokens": len(ids), "n_docs": len(docs),
            **{f"positive_rate_{k}": pos[k] / max(1, n[k]) for k in sorted(n)}}


# ---- the pipeline on real text: LM -> layer-L residual -> SAE latents -> labels ---------------------------------
def doc_latents(model, tok, sae, layer: int, texts: list[str], seq_len: int, prepend_bos: bool = True,
                batch: int = 8) -> list[dict]:
    """Per document: token ids, character spans, a special-token mask and the SAE's latent activations at every
    position (T, n_latents) (zeros at positions a store excludes: specials, the sink of BOS-less tokenizers)."""
    from lmlab.acts.hooks import forward_to_layer
    from lmlab.acts.positions import encode_docs, keep_positions, pad_batch, pad_id

    enc = encode_docs(tok, texts, seq_len, prepend_bos)
    out = []
    for i in range(0, len(enc), batch):
        ids, mask = pad_batch(enc[i:i + batch], pad_id(tok))
        with torch.inference_mode():
            h = forward_to_layer(model, ids, layer, attention_mask=mask).float()  # (b, T, d)
        keep = keep_positions(tok, ids, mask, prepend_bos)
        for r, text in enumerate(texts[i:i + batch]):
            T = int(mask[r].sum())
            f = torch.zeros(T, sae.cfg.n_latents)
            k = keep[r, :T]
            if k.any():
                f[k] = sae.encode(h[r, :T][k])
            out.append({"ids": ids[r, :T].tolist(), "spans": _char_spans(tok, text, ids[r, :T].tolist()),
                        "special": ~k, "latents": f})
    return out


def _char_spans(tok, text: str, ids: list[int]) -> list[tuple[int, int]]:
    """[start, end) character offsets of each token in `text`; (0, 0) for tokens the text does not contain
    (a prepended BOS). `ids` is encode_docs' output: the text's own encoding cut at seq_len, possibly after a
    prepended BOS, so the text is encoded whole (no truncation: a cut there would shift the alignment) and
    matched at offset 0 or 1."""
    enc = tok(text, add_special_tokens=True, return_offsets_mapping=True)
    offs, own = [tuple(o) for o in enc["offset_mapping"]], enc["input_ids"]
    j = 0 if ids == own[:len(ids)] else 1  # 1: a BOS was prepended in front of the text's own tokens
    spans = [(0, 0)] * len(ids)
    for t in range(len(ids) - j):
        if ids[j + t] == own[t]:
            spans[j + t] = offs[t]
    return spans


def label_corpus(sae, model, tok, layer: int, docs: list, domain: str, n_latents: int = 8, seq_len: int = 128,
                 prepend_bos: bool = True, seed: int = 0, min_word_share: float = 0.5) -> dict:
    """Choose concept latents for `domain` on these documents (the corpus's own domain labels) among those with
    at least `min_word_share` of their domain activation on word tokens (`word_share`; 0 = all latents), set
    thresholds on the other documents' tokens, label every token; returns the choice, thresholds, per-document
    labels and the label-quality figures (positive rate per class, token precision/recall against the domain,
    share of labelled tokens without a letter)."""
    texts = [d.text for d in docs]
    rows = doc_latents(model, tok, sae, layer, texts, seq_len, prepend_bos)
    is_dom = np.array([d.domain == domain for d in docs])
    means = np.stack([(r["latents"][~r["special"]].mean(0) if (~r["special"]).any()
                       else torch.zeros(sae.cfg.n_latents)).numpy() for r in rows])
    share = word_share(rows, texts, is_dom)
    choice = choose_latents(means, is_dom, n_latents, seed, share >= min_word_share if min_word_share > 0 else None)
    choice.update(word_share=share[choice["latents"]].tolist(), min_word_share=min_word_share,
                  n_format_latents_excluded=int(((share < min_word_share) & (means.max(0) > 0)).sum()))
    idx = torch.tensor(choice["latents"])
    background = torch.cat([r["latents"][~r["special"]][:, idx] for r, y in zip(rows, is_dom) if not y])
    thr = thresholds(background)
    labels = [label_tokens(r["latents"][:, idx], thr, r["special"]) for r in rows]
    quality = label_quality(labels, rows, is_dom)
    lab_pieces = [texts[i][s:e] for i, (r, y) in enumerate(zip(rows, labels)) for (s, e), v in zip(r["spans"], y) if v]
    quality["labelled_without_letter"] = float(np.mean([not any(c.isalpha() for c in p) for p in lab_pieces])
                                               if lab_pieces else 0.0)
    return {"choice": choice, "thresholds": thr.tolist(), "quality": quality, "prepend_bos": prepend_bos,
            "docs": [{"id": d.id, "domain": d.domain, "text": d.text, "ids": r["ids"], "spans": r["spans"],
                      "labels": y.tolist()} for d, r, y in zip(docs, rows, labels)]}


def label_documents(sae, model, tok, layer: int, docs: list, latents: list[int], thr: torch.Tensor,
                    seq_len: int = 512, prepend_bos: bool = True) -> list[dict]:
    """Apply a concept choice (latents, thresholds from `label_corpus`) to other documents, e.g. the mixed pages
    of the filtering corpus: per document id, domain, text, entry spans (when it has them), ids, character spans
    and labels."""
    rows = doc_latents(model, tok, sae, layer, [d.text for d in docs], seq_len, prepend_bos)
    idx = torch.tensor(latents)
    out = []
    for d, r in zip(docs, rows):
        y = label_tokens(r["latents"][:, idx], thr, r["special"])
        out.append({"id": d.id, "domain": d.domain, "text": d.text, "ids": r["ids"], "spans": r["spans"],
                    "labels": y.tolist(), "entry_spans": [list(x) for x in (d.spans or [])] or None})
    return out


def span_agreement(docs: list[dict], domain: str) -> dict:
    """How token labels agree with the documents' own finer labels (entry spans of mixed pages; a document
    without spans is one span of its domain): positive rate of the tokens inside each span domain, and token
    precision / recall for `domain` (a labelled token is right when it lies in a span of `domain`)."""
    pos: dict[str, int] = {}
    n: dict[str, int] = {}
    for d in docs:
        ents = d.get("entry_spans") or [[0, len(d["text"]), d["domain"]]]
        for (s, e), y in zip(d["spans"], d["labels"]):
            if e <= s:
                continue  # specials
            dom = next((x[2] for x in ents if x[0] <= s < x[1]), "between entries")
            n[dom], pos[dom] = n.get(dom, 0) + 1, pos.get(dom, 0) + int(y)
    tot = sum(pos.values())
    return {"positive_rate": {k: pos[k] / n[k] for k in sorted(n)}, "tokens": dict(sorted(n.items())),
            "precision": pos.get(domain, 0) / max(1, tot), "recall": pos.get(domain, 0) / max(1, n.get(domain, 0))}


def label_quality(labels: list[torch.Tensor], rows: list[dict], is_dom: np.ndarray) -> dict:
    """Positive-token rate inside and outside the domain's documents, and token-level precision / recall
    against the document label (a positive token counts as right when its document is in the domain; every
    token of a domain document counts as a target — an upper bound on what a token labeller should mark)."""
    pos = np.array([int(y.sum()) for y in labels])
    n = np.array([int((~r["special"]).sum()) for r in rows])
    tp, fp = pos[is_dom].sum(), pos[~is_dom].sum()
    return {"positive_rate_domain": float(tp / max(1, n[is_dom].sum())),
            "positive_rate_other": float(fp / max(1, n[~is_dom].sum())),
            "precision": float(tp / max(1, tp + fp)), "recall": float(tp / max(1, n[is_dom].sum())),
            "docs_with_a_positive_domain": float((pos[is_dom] > 0).mean()),
            "docs_with_a_positive_other": float((pos[~is_dom] > 0).mean()), "n_tokens": int(n.sum())}


def html_view(result: dict, path, max_docs: int = 40) -> None:
    """A self-contained HTML page: each document's text with labelled tokens highlighted (by character span)."""
    import html

    from lmlab.io import write_text

    parts = [f"<h2>SAE token labels: {html.escape(str(result.get('domain', '')))}</h2>",
             f"<p>latents {result['choice']['latents']} — held-out AUC "
             f"{', '.join(f'{a:.2f}' for a in result['choice']['heldout_auc'])}; "
             + ", ".join(f"{k} {v:.3f}" for k, v in result["quality"].items() if isinstance(v, float)) + "</p>"]
    for d in result["docs"][:max_docs]:
        marked = np.zeros(len(d["text"]) + 1, dtype=bool)
        for (s, e), y in zip(d["spans"], d["labels"]):
            if y:
                marked[s:e] = True
        out, i = [], 0
        while i < len(d["text"]):
            j = i
            while j < len(d["text"]) and marked[j] == marked[i]:
                j += 1
            chunk = html.escape(d["text"][i:j])
            out.append(f"<mark>{chunk}</mark>" if marked[i] else chunk)
            i = j
        parts.append(f"<div class=doc><b>{html.escape(d['id'])}</b> [{html.escape(d['domain'])}]<br>{''.join(out)}</div>")
    style = "<style>body{font-family:sans-serif;max-width:60em}.doc{margin:1em 0}mark{background:#fd6}</style>"
    write_text(path, f"<!doctype html><meta charset=utf-8>{style}" + "\n".join(parts))


def label_command(sae_path, out, domain: str, store_path=None, n_docs: int = 200, n_latents: int = 8,
                  seq_len: int = 128, split: str = "val", seed: int = 0, tokenizer=None,
                  min_word_share: float = 0.5, apply_to: str | None = None, apply_docs: int = 500,
                  apply_split: str = "train", apply_seq_len: int = 512) -> dict:
    """`lmlab sae label`: n_docs documents of `domain` and n_docs others from the store's corpus split ->
    OUT/labels.jsonl (per document: id, domain, text, token ids, character spans, labels), OUT/labels.json (latents,
    thresholds, quality) and OUT/labels.html; with `tokenizer` (a tokenizer.json, a directory holding one such as
    a prepared dataset, or an HF tokenizer) also OUT/labels.bin + labels.side (`label_shard`). Returns labels.json's
    content. With `apply_to` (a corpus: "embedded-pages", a local path), the latents and thresholds chosen on the
    store's corpus label the first `apply_docs` documents of that corpus's `apply_split` instead, and those are
    the documents written (with `applied.agreement` against their entry spans, `span_agreement`)."""
    import json
    from pathlib import Path

    from lmlab.acts.positions import store_prepend_bos
    from lmlab.acts.store import ActivationStore
    from lmlab.data.corpus import iter_documents
    from lmlab.data.tokenizer import Tokenizer
    from lmlab.errors import DataError
    from lmlab.io import atomic_path, write_json
    from lmlab.models import load_causal_lm
    from lmlab.sae.saelens import load_sae, sae_store

    sae, out = load_sae(sae_path), Path(out)
    target = Tokenizer.load(tokenizer) if tokenizer is not None else None  # a bad tokenizer fails before any work
    if apply_to is not None:
        iter_documents(apply_to, split=apply_split)  # so does a bad corpus (checked now, read later)
    store_path = sae_store(sae_path, store_path)
    store = ActivationStore.open(store_path)
    if store.domains and domain not in store.domains:
        raise DataError(f"the store's corpus has no domain {domain!r} (it has {', '.join(store.domains)})",
                        "pass --domain with one of those")
    if sae.cfg.d_in != store.d_model:
        raise DataError(f"the SAE reads d={sae.cfg.d_in}, the store holds d={store.d_model}", "use the SAE's own store")
    corpus = store.meta.get("config", {}).get("corpus")
    docs, others = [], []
    for d in iter_documents(corpus, split=split):  # the first n_docs of the domain and n_docs of the others
        pile = docs if d.domain == domain else others
        if len(pile) < n_docs:
            pile.append(d)
        if len(docs) >= n_docs and len(others) >= n_docs:
            break
    model, tok = load_causal_lm(store.model)
    result = label_corpus(sae, model, tok, store.layer, docs + others, domain, n_latents, seq_len,
                          store_prepend_bos(store), seed, min_word_share)
    result.update(domain=domain, sae=str(sae_path), store=str(store_path), split=split, layer=store.layer)
    if apply_to is not None:
        pages = [d for _, d in zip(range(apply_docs), iter_documents(apply_to, split=apply_split))]
        result["docs"] = label_documents(sae, model, tok, store.layer, pages, result["choice"]["latents"],
                                         torch.tensor(result["thresholds"]), apply_seq_len, store_prepend_bos(store))
        result["applied"] = {"corpus": str(apply_to), "split": apply_split, "n_docs": len(pages),
                             "seq_len": apply_seq_len, "agreement": span_agreement(result["docs"], domain)}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "labels.jsonl") as tmp:
        keys = ("id", "domain", "text", "ids", "spans", "labels", "entry_spans")
        tmp.write_text("".join(json.dumps({k: d[k] for k in keys if d.get(k) is not None}) + "\n"
                               for d in result["docs"]))
    html_view(result, out / "labels.html")
    summary = {k: v for k, v in result.items() if k != "docs"}
    if target is not None:
        summary["shard"] = {"path": "labels.bin", **label_shard(result["docs"], target, out / "labels.bin", domain)}
    write_json(out / "labels.json", summary)
    return summary
