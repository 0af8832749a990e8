"""How a block of tokenized documents becomes forward passes: packed rows (default) or length-sorted batches.

Issue 18: on the embedded corpus (short dictionary entries, median 42 tokens) right-padded batches spend most
of their work on pad positions. `packed` puts several documents into one row, first-fit decreasing into rows
of `capacity` tokens. Each document's position ids restart at 0 and the model gets no 2D attention mask:
transformers then derives a block-diagonal causal mask from the restarting position ids
(`masking_utils.find_packed_sequence_indices`, used by `create_causal_mask` for Llama, GPT-2, GPT-NeoX...),
so no document attends to another and rotary/learned positions are those of the document alone. The tail of
a row that no document fills is one more "document" of pad ids (positions restart there too): nothing real
attends to it, and it is never read. `check_packing` verifies on the model itself that this holds.

`sorted` is the pre-issue-18 batching, kept bit for bit: `batch` documents per pass, longest first,
right-padded with a 2D attention mask.

A plan is a pure function of the block (lengths and the options), which is what makes resume exact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pass:
    """One forward pass: ids (b, T); either attention_mask (sorted) or position_ids (packed), the other None;
    spans [(doc j in the block, row, first column)]: document j occupies ids[row, col:col + len(enc[j])]."""

    ids: object
    attention_mask: object
    position_ids: object
    spans: list[tuple[int, int, int]]


def _length_order(enc: list[list[int]]) -> list[int]:
    """Non-empty documents, longest first, ties by block order: the deterministic order both modes start from."""
    return sorted((j for j in range(len(enc)) if enc[j]), key=lambda j: (-len(enc[j]), j))


def sorted_passes(enc: list[list[int]], batch: int, pad: int) -> list[Pass]:
    """The pre-issue-18 batching: `batch` documents per pass in length order, right-padded, 2D mask."""
    from lmlab.acts.positions import pad_batch

    order, out = _length_order(enc), []
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        ids, mask = pad_batch([enc[j] for j in idx], pad)
        out.append(Pass(ids, mask, None, [(j, r, 0) for r, j in enumerate(idx)]))
    return out


def pack_rows(lengths: dict[int, int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: documents (longest first, ties by index) into rows of at most `capacity` tokens
    (a longer document gets a row of its own). FFD uses at most 11/9 OPT + 1 rows (Johnson 1973); with short
    documents the only slack is the last rows' tails."""
    rows: list[list[int]] = []
    free: list[int] = []
    for j in sorted(lengths, key=lambda j: (-lengths[j], j)):
        r = next((r for r, f in enumerate(free) if f >= lengths[j]), None)
        if r is None:
            r = len(rows)
            rows.append([])
            free.append(max(capacity, lengths[j]))
        rows[r].append(j)
        free[r] -= lengths[j]
    return rows


def packed_passes(enc: list[list[int]], batch: int, capacity: int, pad: int) -> list[Pass]:
    """`batch` packed rows per pass; a pass is as wide as its fullest row (no column of pure padding)."""
    import torch

    rows = pack_rows({j: len(enc[j]) for j in _length_order(enc)}, capacity)
    out = []
    for s in range(0, len(rows), batch):
        group = rows[s:s + batch]
        width = max(sum(len(enc[j]) for j in row) for row in group)
        ids = torch.full((len(group), width), pad, dtype=torch.long)
        pos = torch.zeros((len(group), width), dtype=torch.long)
        spans = []
        for r, row in enumerate(group):
            col = 0
            for j in row:
                n = len(enc[j])
                ids[r, col:col + n] = torch.tensor(enc[j], dtype=torch.long)
                pos[r, col:col + n] = torch.arange(n)
                spans.append((j, r, col))
                col += n
            pos[r, col:] = torch.arange(width - col)  # the pad tail: a segment of its own
        out.append(Pass(ids, None, pos, spans))
    return out


def check_packing(model, layer: int, device, pad: int) -> None:
    """ConfigError unless the model keeps packed documents apart: the second of two packed sequences must give
    (to dtype round-off) the residual it gives alone. A model that ignored the restarting position ids would
    let it attend to the first one and shift its positions: an O(1) relative change, far above round-off."""
    import torch

    from lmlab.acts.hooks import forward_to_layer
    from lmlab.errors import ConfigError

    vocab = int(getattr(model.config, "vocab_size", 1000))
    a, b = [(7 * i + 11) % vocab for i in range(9)], [(13 * i + 5) % vocab for i in range(7)]
    p = packed_passes([a, b], 1, len(a) + len(b), pad)[0]
    with torch.inference_mode():
        both = forward_to_layer(model, p.ids.to(device), layer, position_ids=p.position_ids.to(device))
        alone = forward_to_layer(model, torch.tensor([b], device=device), layer)
    col = {j: c for j, _, c in p.spans}[1]
    got, want = both[0, col:col + len(b)].float(), alone[0].float()
    rel = ((got - want).norm(dim=-1) / want.norm(dim=-1).clamp_min(1e-6)).max().item()
    if rel > 0.05:
        raise ConfigError(f"{type(model).__name__} lets packed documents see each other (relative change "
                          f"{rel:.2g})", "harvest with --set batching=sorted")
