"""Byte-level BPE tokenizers: train lmlab's own, or wrap any HF tokenizer behind one small interface.

An lmlab tokenizer is a GPT-2-style byte-level BPE (HF `tokenizers`): every string round-trips exactly,
with no unknown token. Its special tokens come first, with fixed ids:

    0  <|endoftext|>  document separator; also prepended to each document as BOS
    1  <|hidden|>     reserved for token-removal filtering (a removed token is replaced by it)
    2  <|pad|>        padding

`encode` never adds special tokens; callers place `eot_id`/`bos_id` themselves. Heavy libraries
(`tokenizers`, `transformers`) are imported inside functions so that importing this module stays cheap.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmlab.errors import DataError
from lmlab.io import atomic_path

EOT, HIDDEN, PAD = "<|endoftext|>", "<|hidden|>", "<|pad|>"
SPECIAL_TOKENS = (EOT, HIDDEN, PAD)  # ids 0, 1, 2, in this order


def train_tokenizer(texts: Iterable[str], out: str | Path, vocab_size: int = 8192) -> Path:
    """Train a byte-level BPE on `texts` and write it to `out` (a tokenizer.json path). Deterministic."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(SPECIAL_TOKENS):
        raise DataError(f"vocab_size {vocab_size} is too small",
                        f"use at least {len(alphabet) + len(SPECIAL_TOKENS)} (256 bytes + 3 special tokens)")
    tok = HFTokenizer(models.BPE())
    # No normalizer: byte-level BPE must reproduce the input exactly (decode(encode(x)) == x).
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=alphabet, min_frequency=2, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    out = Path(out)
    with atomic_path(out) as tmp:
        tok.save(str(tmp))
    return out


class Tokenizer:
    """A fast tokenizer with lmlab's conventions: no implicit specials, known EOT/BOS/pad/hidden ids."""

    def __init__(self, backend: Any, hf: Any = None, name: str = ""):
        # A private copy of the `tokenizers.Tokenizer`: a tokenizer.json may switch on truncation or padding,
        # which would silently cut documents, and transformers may mutate the one it owns.
        backend = backend.__class__.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        self._hf = hf  # the transformers tokenizer it came from, if any
        self.name = name
        self.vocab_size: int = len(hf) if hf is not None else backend.get_vocab_size(with_added_tokens=True)
        self.hidden_id: int | None = backend.token_to_id(HIDDEN)
        # An HF tokenizer's own config wins; lmlab's special tokens are the fallback (hf may be None).
        hf_eos, hf_bos = getattr(hf, "eos_token_id", None), getattr(hf, "bos_token_id", None)
        eot = _first(hf_eos, backend.token_to_id(EOT), hf_bos)
        if eot is None:
            raise DataError(f"tokenizer {name} has no end-of-text token",
                            "use a tokenizer with an eos token (or <|endoftext|>)")
        self.eot_id: int = eot
        self.bos_id: int = _first(hf_bos, eot)
        self.pad_id: int = _first(getattr(hf, "pad_token_id", None), backend.token_to_id(PAD), eot)

    # --- loading ------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, spec: str | os.PathLike) -> Tokenizer:
        """From a tokenizer.json, a directory holding one, or an HF tokenizer directory / hub name."""
        path = Path(spec).expanduser()
        if path.is_file():
            return cls._from_file(path)
        if path.is_dir():
            if (path / "tokenizer_config.json").is_file() or not (path / "tokenizer.json").is_file():
                return cls._from_auto(str(path))  # HF config carries eos/bos/pad: let transformers read it
            return cls._from_file(path / "tokenizer.json")
        if _looks_like_path(str(spec)):
            raise DataError(f"tokenizer path {spec} does not exist",
                            "pass a tokenizer.json, a directory holding one, or an HF tokenizer name")
        return cls._from_auto(str(spec))

    @classmethod
    def from_hf(cls, hf: Any, name: str = "") -> Tokenizer:
        """Wrap an already loaded transformers fast tokenizer."""
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise DataError(f"tokenizer {name or type(hf).__name__} is not a fast tokenizer",
                            "use a tokenizer that ships a tokenizer.json")
        return cls(backend, hf, name or getattr(hf, "name_or_path", ""))

    @classmethod
    def _from_file(cls, path: Path) -> Tokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        try:
            return cls(HFTokenizer.from_file(str(path)), name=str(path))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise DataError(f"cannot read tokenizer {path} ({e})", "pass a valid tokenizer.json") from e

    @classmethod
    def _from_auto(cls, spec: str) -> Tokenizer:
        from transformers import AutoTokenizer

        try:
            try:  # local dirs and already-cached hub tokenizers: no network round-trips
                hf = AutoTokenizer.from_pretrained(spec, local_files_only=True)
            except OSError:
                if Path(spec).is_dir() or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""):
                    raise
                hf = AutoTokenizer.from_pretrained(spec)
        except Exception as e:  # OSError, ValueError, connection errors...: all mean "not loadable"
            raise DataError(f"cannot load tokenizer {spec} ({type(e).__name__}: {str(e)[:200]})",
                            "pass a tokenizer.json, a directory holding one, or a local HF tokenizer "
                            "directory (hub names need network)") from e
        return cls.from_hf(hf, spec)

    # --- encoding -----------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # tokenizers parallelises a batch over its own Rust threads
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        # Special tokens stay visible: a decoded stream shows where documents were separated.
        return self.backend.decode(list(ids), skip_special_tokens=False)

    def __len__(self) -> int:
        return self.vocab_size

    def fingerprint(self) -> str:
        """sha256 of the vocabulary (token -> id, specials included): equal exactly when two tokenizers map
        tokens to the same ids, whichever files they were loaded from (tokenizer.json alone or with HF configs)."""
        import hashlib
        import json

        vocab = sorted(self.backend.get_vocab(with_added_tokens=True).items())
        return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size}, eot_id={self.eot_id})"

    # --- transformers interop -----------------------------------------------------------------------------

    def to_hf(self) -> Any:
        """A transformers fast tokenizer giving the same ids as `encode` (it adds no BOS/EOS by itself)."""
        if self._hf is not None:
            return self._hf
        from transformers import PreTrainedTokenizerFast

        extra = {"additional_special_tokens": [HIDDEN]} if self.hidden_id is not None else {}
        hf = PreTrainedTokenizerFast(tokenizer_object=self.backend,
                                     bos_token=EOT, eos_token=EOT, pad_token=PAD, **extra)
        self._hf = hf
        return hf

    def save(self, directory: str | os.PathLike) -> Path:
        """Write tokenizer.json (+ HF config files, so `AutoTokenizer.from_pretrained(directory)` works)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".tokenizer-", dir=directory) as tmp:
            self.to_hf().save_pretrained(tmp)
            for f in sorted(Path(tmp).iterdir()):  # each file lands whole (rename is atomic)
                with atomic_path(directory / f.name) as dest:
                    shutil.move(f, dest)
        return directory / "tokenizer.json"


def _first(*ids: int | None) -> int | None:
    return next((i for i in ids if i is not None), None)


def _looks_like_path(spec: str) -> bool:
    # Hub names are "name" or "org/name"; anything else that does not exist is a missing local path.
    return spec.endswith(".json") or spec.startswith((".", "~", "/")) or spec.count("/") > 1 or "\\" in spec
