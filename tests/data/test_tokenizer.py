"""Byte-level BPE: exact round trips, fixed special ids, determinism, transformers interop."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from lmlab.data.corpus import iter_documents
from lmlab.data.tokenizer import SPECIAL_TOKENS, Tokenizer, train_tokenizer
from lmlab.errors import DataError

TEXTS = [
    "Hello, world!",
    "Abdomen, n. 1. (Anat.) The belly, or that part of the body between the thorax and the pelvis.",
    "def f(x):\n    return x ** 2  # squares\n\n\tprint(f(3))\n",
    "naïve café — Müller's Œuvre, 東京, Ελληνικά, emoji 🙂👍🏽",
    "   leading and trailing spaces   ",
    "\x00 control \x7f bytes \r\n",
    "",
    "<|endoftext|>",
]


@pytest.fixture(scope="module")
def sample() -> list[str]:
    return [d.text for d in itertools.islice(iter_documents(split="train"), 300)]


@pytest.fixture(scope="module")
def tok_path(sample, tmp_path_factory) -> Path:
    return train_tokenizer(sample, tmp_path_factory.mktemp("tok") / "tokenizer.json", vocab_size=512)


@pytest.fixture(scope="module")
def tok(tok_path) -> Tokenizer:
    return Tokenizer.load(tok_path)


def test_round_trip(tok, sample):
    for text in TEXTS + sample[:50]:
        assert tok.decode(tok.encode(text)) == text


def test_special_tokens_and_sizes(tok):
    assert [tok.backend.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2]
    assert (tok.eot_id, tok.hidden_id, tok.pad_id, tok.bos_id) == (0, 1, 2, 0)
    assert tok.vocab_size == len(tok) == 512
    assert tok.encode("<|endoftext|>") == [0]
    assert 0 not in tok.encode("plain text")  # encode adds no special tokens


def test_encode_batch_matches_encode(tok, sample):
    assert tok.encode_batch(sample[:40]) == [tok.encode(t) for t in sample[:40]]


def test_training_is_deterministic(tok_path, sample, tmp_path):
    again = train_tokenizer(iter(sample), tmp_path / "again.json", vocab_size=512)
    assert again.read_bytes() == tok_path.read_bytes()
    assert not list(tmp_path.glob("*.tmp-*"))


def test_to_hf_gives_the_same_ids(tok, sample):
    hf = tok.to_hf()
    assert (hf.bos_token, hf.eos_token, hf.pad_token) == ("<|endoftext|>", "<|endoftext|>", "<|pad|>")
    for text in TEXTS + sample[:30]:
        assert hf(text)["input_ids"] == tok.encode(text)
    assert hf.decode(tok.encode(TEXTS[3])) == TEXTS[3]


def test_save_and_reload(tok, sample, tmp_path):
    from transformers import AutoTokenizer

    tok.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "tokenizer.json").is_file()
    again = Tokenizer.load(tmp_path / "saved")
    assert (again.eot_id, again.hidden_id, again.pad_id, again.vocab_size) == (0, 1, 2, 512)
    assert again.encode_batch(sample[:20]) == tok.encode_batch(sample[:20])
    auto = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert auto(sample[0])["input_ids"] == tok.encode(sample[0])
    assert Tokenizer.load(tmp_path / "saved" / "tokenizer.json").encode(sample[1]) == tok.encode(sample[1])


def test_wrapping_an_hf_tokenizer(tok, tmp_path):
    hf = tok.to_hf()
    hf.save_pretrained(tmp_path / "hf")
    wrapped = Tokenizer.load(tmp_path / "hf")
    assert wrapped.to_hf() is not None and wrapped.encode(TEXTS[1]) == tok.encode(TEXTS[1])
    assert Tokenizer.from_hf(hf).eot_id == 0


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        Tokenizer.load(tmp_path / "missing" / "tokenizer.json")
    with pytest.raises(DataError, match="does not exist"):
        Tokenizer.load(str(tmp_path / "missing_dir"))
    (tmp_path / "broken.json").write_text("{not a tokenizer")
    with pytest.raises(DataError, match="cannot read tokenizer"):
        Tokenizer.load(tmp_path / "broken.json")
    with pytest.raises(DataError, match="too small"):
        train_tokenizer(["abc"], tmp_path / "t.json", vocab_size=100)

