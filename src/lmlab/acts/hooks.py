"""Residual-stream access at layer L: read it, stop the forward there, or write (replace / add to) it.

Layer convention (DESIGN.md; this module owns it): "layer L" is the output of decoder block L, 0-indexed.
For L < n_layers - 1 that equals HF's `hidden_states[L + 1]`; HF's last hidden state has the final norm
applied, so for the last block we read the block output itself. Every hook is registered inside a context
manager and removed on exit, also on error (TransformerLens's warning: PyTorch hooks are global state).

Supported architectures are those whose decoder blocks we can find: Llama-family and most HF decoders
(`model.layers`), GPT-2 (`transformer.h`), GPT-NeoX (`gpt_neox.layers`), and lmlab's own GPT (`layers`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from lmlab.errors import ConfigError, ModelNotFound

_BLOCK_PATHS = ("model.layers", "model.model.layers", "transformer.h", "gpt_neox.layers", "layers",
                "model.decoder.layers", "model.language_model.layers")


def decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of decoder blocks, or ModelNotFound naming what is supported."""
    for path in _BLOCK_PATHS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList) and len(obj) > 0:
            return obj
    raise ModelNotFound(f"cannot find the decoder blocks of {type(model).__name__}",
                        "lmlab hooks Llama-family, GPT-2, GPT-NeoX and lmlab models (blocks at "
                        + ", ".join(_BLOCK_PATHS) + ")")


def check_layer(model: torch.nn.Module, layer: int) -> torch.nn.Module:
    """Block `layer`, or ConfigError if it is out of range."""
    blocks = decoder_blocks(model)
    if not 0 <= layer < len(blocks):
        raise ConfigError(f"layer {layer} is out of range for {type(model).__name__} ({len(blocks)} blocks)",
                          f"choose --layer in 0..{len(blocks) - 1} (output of that decoder block)")
    return blocks[layer]


def _hidden(output) -> torch.Tensor:
    """A block's output is a tensor or a tuple whose first element is the residual stream."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _with_hidden(output, h: torch.Tensor):
    if isinstance(output, tuple):
        return (h, *output[1:])
    if isinstance(output, list):
        return [h, *output[1:]]
    return h


@contextlib.contextmanager
def read_residual(model: torch.nn.Module, layer: int) -> Iterator[list[torch.Tensor]]:
    """Yield a list that receives the (B, T, d) residual at `layer` on every forward inside the block."""
    got: list[torch.Tensor] = []
    handle = check_layer(model, layer).register_forward_hook(lambda m, i, o: got.append(_hidden(o)))
    try:
        yield got
    finally:
        handle.remove()


@contextlib.contextmanager
def write_residual(model: torch.nn.Module, layer: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace the residual at `layer` by fn(residual) on every forward (generation included)."""
    handle = check_layer(model, layer).register_forward_hook(lambda m, i, o: _with_hidden(o, fn(_hidden(o))))
    try:
        yield
    finally:
        handle.remove()


def add_to_residual(model: torch.nn.Module, layer: int, vector: torch.Tensor, scale: float = 1.0):
    """Context manager: residual += scale * vector (d,) at every position (activation addition)."""
    return write_residual(model, layer, lambda h: h + scale * vector.to(h.dtype).to(h.device))


class _Stop(Exception):
    """Raised by the hook to abandon the forward pass once layer L is computed."""


def forward_to_layer(model: torch.nn.Module, input_ids: torch.Tensor, layer: int,
                     attention_mask: torch.Tensor | None = None,
                     position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """The (B, T, d) residual at `layer`, running blocks 0..layer only: no later blocks, no LM head.
    position_ids (with no attention_mask) that restart inside a row run packed documents (acts/packing.py)."""
    out: list[torch.Tensor] = []

    def stop(m, i, o):
        out.append(_hidden(o))
        raise _Stop

    handle = check_layer(model, layer).register_forward_hook(stop)
    try:
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if getattr(getattr(model, "config", None), "use_cache", None) is not None:
            kwargs["use_cache"] = False
        model(input_ids, **kwargs)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not out:
        raise RuntimeError(f"layer {layer} was not reached in the forward pass")
    return out[0]
