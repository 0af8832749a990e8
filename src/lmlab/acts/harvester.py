"""Harvest the residual stream at layer L of any causal LM into an activation store (acts/store.py).

Documents stream from a corpus in a fixed order; each gets a global index. They are cut into blocks of
`block_docs`; block b belongs to rank b % world (torchrun). Inside a block, documents become forward passes
(acts/packing.py): by default packed several to a row with restarting position ids and a block-diagonal
causal mask (issue 18: almost no padding), or, with `batching="sorted"`, sorted by length and right-padded
(the earlier behaviour, bit for bit). They run through blocks 0..L only (`hooks.forward_to_layer`: no later
blocks, no logits, inference mode), and every non-special position is stored with its provenance (doc
index, position in the document, token id, domain). Which positions count (BOS and other special tokens
excluded) is decided by acts/positions.py, the rule every later stage shares.

Exact resume: a block is the unit of work, and the store commits shards only at block ends with the next
block as cursor, so a killed harvest re-runs from the last committed block and — passes being a pure
function of the block — ends with exactly the activations of an uninterrupted run. The cursor also carries
the positions processed and the real (non-pad) tokens among them; `merge_store` sums them into the
manifest's `padding` entry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lmlab import dist
from lmlab.config import check_literal
from lmlab.errors import ConfigError, DataError


@dataclass
class HarvestConfig:
    model: str = "smollm2"
    """Model spec: smollm2, a local HF directory, an lmlab run directory, or a hub id."""
    layer: int = 15
    """Decoder block whose output is stored (0-indexed; = HF hidden_states[layer + 1])."""
    tokens: int = 100_000
    """Activations to store (split across ranks)."""
    out: str = "acts"
    """Store directory."""
    corpus: str | None = None
    """None/"embedded" for the embedded corpus, or a local .txt/.jsonl/.parquet file or directory."""
    split: str = "train"
    """Corpus split to read."""
    domains: list[str] | None = None
    """Restrict to these domains (None: all)."""
    seq_len: int = 512
    """Documents are truncated to this many tokens."""
    batch: int = 16
    """Rows per forward pass: packed rows of up to seq_len tokens (batching=packed) or documents
    (batching=sorted); at most batch x seq_len tokens per pass either way."""
    batching: Literal["packed", "sorted"] = "packed"
    """How a block's documents form forward passes (acts/packing.py). packed: first-fit decreasing into rows of
    seq_len tokens, position ids restarting per document, block-diagonal causal mask (no document sees
    another); padding is only the unfilled row tails (issue 18). sorted: the earlier batching, documents
    longest first, right-padded to each pass's longest; bit-identical to stores harvested before packing."""
    block_docs: int = 128
    """Documents per unit of work (what is packed or sorted together, resume granularity, rank assignment)."""
    prepend_bos: bool = True
    """Start every document with the tokenizer's BOS when it does not add one itself (SmolLM2, GPT-2): the first
    position of a causal LM is an attention sink with an outlier norm (~100x), and it should be a special
    token, which is excluded, not the document's first word. A tokenizer without any BOS token: position 0
    is excluded instead."""
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    """Model compute dtype. auto: bf16 where the hardware computes it natively (a CUDA GPU with bf16, a CPU with
    AVX512-BF16 or AMX), else fp32 (emulated bf16 harvested 4.95x slower than fp32 on an AVX2 CPU; dist.native_bf16).
    The store's manifest records the resolved one."""
    store_dtype: Literal["auto", "bf16", "fp32"] = "auto"
    """Dtype of the stored rows. auto: fp32 when dtype is fp32, else bf16 (half the disk; fp32 activations are
    rounded to nearest even)."""
    shard_size: int = 65536
    """Activations per shard file."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = cuda when available."""

    def __post_init__(self):
        check_literal(self)
        if min(self.tokens, self.seq_len, self.batch, self.block_docs, self.shard_size) < 1:
            raise ConfigError("tokens, seq_len, batch, block_docs and shard_size must be >= 1", "fix the options")


def harvest(cfg: HarvestConfig | None = None, progress: bool = True, **options) -> dict:
    """Fill (or finish) the store at cfg.out; returns its merged manifest. torchrun-aware.

    Mirrors the CLI: `harvest(model="smollm2", layer=15, tokens=100_000, out="acts")` or `harvest(cfg)`."""
    import torch

    cfg = HarvestConfig(**options) if cfg is None else cfg
    from lmlab.acts.hooks import check_layer
    from lmlab.acts.store import StoreWriter, merge_store
    from lmlab.models import load_causal_lm

    owns_group = not dist.is_distributed()
    device = dist.device(cfg.device)
    dist.init(device.type)
    cfg = resolve_dtypes(cfg, device)  # "auto" -> what runs here; the manifest records the result
    model, tok = load_causal_lm(cfg.model, dtype=torch.bfloat16 if cfg.dtype == "bf16" else torch.float32,
                                device=str(device))
    check_layer(model, cfg.layer)
    if cfg.batching == "packed":
        from lmlab.acts.packing import check_packing
        from lmlab.acts.positions import pad_id

        check_packing(model, cfg.layer, device, pad_id(tok))
    domains = _domains(cfg)
    meta = {"model": cfg.model, "model_class": type(model).__name__, "layer": cfg.layer,
            "d_model": int(model.config.hidden_size), "dtype": "bfloat16" if cfg.store_dtype == "bf16" else "float32",
            "compute_dtype": cfg.dtype,
            "domains": domains, "config": asdict(cfg)}
    rank, world = dist.rank(), dist.world_size()
    writer = StoreWriter(cfg.out, meta, shard_size=cfg.shard_size, rank=rank, world=world, resume=True)
    quota = cfg.tokens // world + (1 if rank < cfg.tokens % world else 0)
    _run_blocks(cfg, model, tok, writer, quota, domains, rank, world, device, progress and dist.is_main())
    dist.barrier()
    manifest = merge_store(cfg.out) if dist.is_main() else {}
    dist.barrier()
    if owns_group:
        dist.cleanup()
    return manifest


def resolve_dtypes(cfg: HarvestConfig, device) -> HarvestConfig:
    """cfg with dtype and store_dtype resolved from "auto" (see their docstrings) for `device`."""
    from dataclasses import replace

    store = cfg.store_dtype if cfg.store_dtype != "auto" else ("fp32" if cfg.dtype == "fp32" else "bf16")
    return replace(cfg, dtype=dist.compute_dtype(cfg.dtype, device), store_dtype=store)


def _domains(cfg: HarvestConfig) -> list[str]:
    """The domain names (index = provenance domain id): fixed for the embedded corpus, scanned otherwise."""
    from lmlab.data.corpus import DOMAINS, iter_documents

    if cfg.corpus in (None, "embedded"):
        return list(cfg.domains or DOMAINS)
    seen = sorted({d.domain for d in iter_documents(cfg.corpus, split=cfg.split, domains=cfg.domains)})
    if not seen:
        raise DataError(f"corpus {cfg.corpus} has no documents", "give a corpus with text")
    return seen


def _blocks(cfg: HarvestConfig):
    """Yield (block index, [(doc index, Doc), ...]) over the corpus in its fixed order."""
    from lmlab.data.corpus import iter_documents

    block, b = [], 0
    for i, doc in enumerate(iter_documents(cfg.corpus, split=cfg.split, domains=cfg.domains)):
        block.append((i, doc))
        if len(block) == cfg.block_docs:
            yield b, block
            block, b = [], b + 1
    if block:
        yield b, block


def _run_blocks(cfg, model, tok, writer, quota: int, domains, rank, world, device, progress: bool) -> None:
    from rich.progress import Progress

    cursor = writer.cursor or {"next_block": 0, "count": 0, "done": False, "positions": 0, "real": 0}
    if cursor.get("done"):
        return
    count, seen_text = cursor["count"], False
    work = {k: cursor.get(k, 0) for k in ("positions", "real")}  # 0: a store begun before issue 18
    with Progress(transient=False, disable=not progress) as bar:
        task = bar.add_task(f"harvest layer {cfg.layer}", total=quota, completed=count)
        for b, block in _blocks(cfg):
            seen_text = True
            if b < cursor["next_block"] or b % world != rank:
                continue
            rows, positions, real = _harvest_block(cfg, model, tok, block, domains, device)
            take = min(quota - count, rows[0].shape[0])
            writer.add(*(r[:take] for r in rows))
            count += take
            work = {"positions": work["positions"] + positions, "real": work["real"] + real}
            bar.update(task, completed=count)
            done = count >= quota
            cursor = {"next_block": b + 1, "count": count, "done": done, **work}
            if done:
                break
            writer.commit(cursor)
    if not seen_text:
        raise DataError(f"the corpus ({cfg.corpus or 'embedded'}, split {cfg.split}) has no documents",
                        "give a corpus with text (or another --split/--domains)")
    writer.close(dict(cursor, done=True))


def _passes(cfg, tok, enc: list[list[int]]):
    """The block's forward passes (acts/packing.py): a pure function of the block and the options."""
    from lmlab.acts.packing import packed_passes, sorted_passes
    from lmlab.acts.positions import pad_id

    if cfg.batching == "sorted":
        return sorted_passes(enc, cfg.batch, pad_id(tok))
    return packed_passes(enc, cfg.batch, cfg.seq_len, pad_id(tok))


def _harvest_block(cfg, model, tok, block, domains, device):
    """Residuals of every non-special token of the block's documents: ((acts, doc, pos, token, domain),
    positions processed, real tokens among them)."""
    import torch

    from lmlab.acts.hooks import forward_to_layer
    from lmlab.acts.positions import encode_docs, keep_positions, pad_batch, pad_id

    enc = encode_docs(tok, [d.text for _, d in block], cfg.seq_len, cfg.prepend_bos)
    live, keeps = [j for j in range(len(block)) if enc[j]], {}
    if live:  # the one rule (acts/positions.py), applied to each document on its own, as in any other stage
        ids, mask = pad_batch([enc[j] for j in live], pad_id(tok))
        keeps = dict(zip(live, keep_positions(tok, ids, mask, cfg.prepend_bos)))
    per_doc: dict[int, tuple] = {}
    positions = 0
    for p in _passes(cfg, tok, enc):
        with torch.inference_mode():
            h = forward_to_layer(model, p.ids.to(device), cfg.layer,
                                 attention_mask=None if p.attention_mask is None else p.attention_mask.to(device),
                                 position_ids=None if p.position_ids is None else p.position_ids.to(device))
        h = h.float().cpu()
        positions += p.ids.numel()
        for j, r, col in p.spans:
            keep = keeps[j][:len(enc[j])].nonzero().squeeze(1)
            per_doc[j] = (h[r, col + keep], keep.numpy(), p.ids[r, col + keep].numpy())
    rows = [(block[j][0], domains.index(block[j][1].domain), *per_doc[j]) for j in sorted(per_doc)]  # doc order
    return _concat_rows(rows, model.config.hidden_size), positions, sum(len(enc[j]) for j in live)


def _concat_rows(rows: list[tuple], d: int):
    """[(doc, domain, acts, pos, token)] per document -> the store's columns (acts, doc, pos, token, domain)."""
    import numpy as np
    import torch

    acts = torch.cat([r[2] for r in rows]) if rows else torch.zeros(0, d)
    doc = np.concatenate([np.full(len(r[3]), r[0], np.int64) for r in rows] or [np.zeros(0, np.int64)])
    dom = np.concatenate([np.full(len(r[3]), r[1], np.int16) for r in rows] or [np.zeros(0, np.int16)])
    pos = np.concatenate([r[3] for r in rows] or [np.zeros(0)]).astype(np.int32)
    token = np.concatenate([r[4] for r in rows] or [np.zeros(0)]).astype(np.int32)
    return acts, doc, pos, token, dom


def doc_ids(store) -> dict[int, tuple[str, str]]:
    """{doc index: (document id, domain)} for the documents a store holds rows of. The provenance `doc` column
    is the document's index in the harvest's corpus order (`iter_documents(corpus, split, domains)`), which is
    deterministic, so the ids are re-derived from the corpus rather than stored per row."""
    import numpy as np

    from lmlab.data.corpus import iter_documents

    cfg = store.meta["config"]
    wanted = set(np.unique(store.provenance()["doc"]).tolist())
    out: dict[int, tuple[str, str]] = {}
    for i, d in enumerate(iter_documents(cfg["corpus"], split=cfg["split"], domains=cfg["domains"])):
        if i in wanted:
            out[i] = (d.id, d.domain)
            if len(out) == len(wanted):
                break
    return out


def harvest_main(cfg: HarvestConfig, progress: bool = True) -> dict:
    """CLI entry: harvest, then a one-object summary (rank 0)."""
    m = harvest(cfg, progress=progress)
    if not m:
        return {}
    return {"store": str(Path(cfg.out)), "count": m.get("count"), "d_model": m.get("d_model"),
            "layer": m.get("layer"), "model": m.get("model"), "shards": len(m.get("shards", [])),
            "padding_share": (m.get("padding") or {}).get("share")}
