"""A concept classifier to score steered text (issue 19): an L2 logistic-regression probe on the layer-L
residual of the UNSTEERED model, per token, trained on HELD-OUT text of the concept — the corpus's `val` split
(documents of the concept's domain vs documents of its contrast domain, `general` for medical and python: the
same prose/format on both sides, so the probe reads content rather than "code vs prose"), never the train-split
sets DiffMean is built from — so the score is not the steering direction read back.

Concept score of a continuation = mean predicted probability over its tokens (0..1). The probe's own quality is
reported as held-out AUC on a document split of the val documents: per token and per document (mean probability
over its tokens). Dictionary subject labels such as "(Med.)" / "(Zool.)" are removed from every text first, so
the probe cannot key on the label that defined the domain (data/corpus.py MEDICAL_RE) rather than the content.
The fit is filtering/probe.py's (standardised features, class-balanced, full-batch L-BFGS), l2 = 0.1 (on SmolLM2
layer 15, medical: l2 from 1e-3 to 10 moved the held-out document AUC within 0.91-0.93).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from lmlab.errors import ConfigError

SHORT = 16  # tokens: the length of a steered continuation
SUBJECT_LABEL_RE = re.compile(r"\((?:[A-Z][a-z]{1,14}\.\s*){1,3}[^)]{0,25}\)")  # "(Med.)", "(Anat. & Physiol.)"


@dataclass
class ConceptProbe:
    w: torch.Tensor
    """(d,) weights on raw layer-L activations."""
    b: float
    concept: str = ""
    layer: int = 0
    auc_token: float = float("nan")
    """Held-out AUC per token."""
    auc_doc: float = float("nan")
    """Held-out AUC per document (mean probability over its tokens)."""
    auc_short: float = float("nan")
    """Held-out AUC per document from its first SHORT tokens only (a continuation's length)."""
    n_docs: tuple[int, int] = (0, 0)
    """(positive, negative) val documents used (train + test)."""

    def prob(self, x: torch.Tensor) -> torch.Tensor:
        """p(concept) for activations x (..., d)."""
        return torch.sigmoid(x.float() @ self.w.to(x.device) + self.b)

    def describe(self) -> dict:
        return {"concept": self.concept, "layer": self.layer, "auc_token": self.auc_token, "auc_doc": self.auc_doc,
                f"auc_first{SHORT}": self.auc_short, "n_docs": list(self.n_docs)}


def heldout_texts(concept: str, max_pos: int = 200, neg_ratio: int = 2) -> tuple[list[str], list[str]]:
    """(positive, negative) texts of the embedded corpus's val split for a corpus concept (steering.directions
    CORPUS_CONCEPTS): every val document of the concept's domain (up to max_pos), and neg_ratio as many of its
    contrast domain, subject labels removed."""
    from lmlab.data.corpus import iter_documents
    from lmlab.glp.steering.directions import CORPUS_CONCEPTS

    if concept not in CORPUS_CONCEPTS:
        raise ConfigError(f"the concept classifier needs a corpus concept, not {concept!r}",
                          f"use one of {', '.join(sorted(CORPUS_CONCEPTS))}")
    dom, other = CORPUS_CONCEPTS[concept]
    clean = lambda t: re.sub(r"\s+", " ", SUBJECT_LABEL_RE.sub("", t)).strip()
    pos = [clean(d.text) for _, d in zip(range(max_pos), iter_documents(None, "val", [dom]))]
    neg = [clean(d.text) for _, d in zip(range(neg_ratio * len(pos)), iter_documents(None, "val", [other]))]
    return pos, neg


def fit_concept_probe(x: torch.Tensor, y: np.ndarray, doc: np.ndarray, l2: float = 1e-2, test_frac: float = 0.3,
                      seed: int = 0) -> tuple[torch.Tensor, float, float, float, float]:
    """Per-token logistic probe on x (n, d) with labels y (n,) of documents doc (n,) (rows of a document in
    order): fit on a class-balanced subset of the train documents, AUC on the test documents.
    -> (w, b, token AUC, document AUC, AUC of documents' first SHORT tokens)."""
    from lmlab.filtering.probe import balance, fit_logistic
    from lmlab.glp.probe import auc_columns, split_by_doc

    te = split_by_doc(doc, test_frac)
    tr = np.flatnonzero(~te)
    tr = tr[balance(y[tr], seed)]
    pr = fit_logistic(x[tr], torch.as_tensor(y[tr]), l2)
    p = pr.prob(x[te]).numpy()  # (n_te,)
    auc_tok = float(auc_columns(p[:, None], y[te])[0])
    docs = np.unique(doc[te])
    p_doc = np.array([p[doc[te] == g].mean() for g in docs])
    p_short = np.array([p[doc[te] == g][:SHORT].mean() for g in docs])
    y_doc = np.array([y[te][doc[te] == g][0] for g in docs])
    return (pr.w, pr.b, auc_tok, float(auc_columns(p_doc[:, None], y_doc)[0]),
            float(auc_columns(p_short[:, None], y_doc)[0]))


def train_concept_probe(model, tok, layer: int, concept: str, max_pos: int = 200, seq_len: int = 64,
                        prepend_bos: bool = True, l2: float = 0.1, seed: int = 0) -> ConceptProbe:
    """The concept classifier (module docstring) from held-out corpus text, read by the unsteered model."""
    from lmlab.glp.probe import collect

    pos, neg = heldout_texts(concept, max_pos)
    c = collect(model, tok, layer, pos + neg, seq_len, prepend_bos=prepend_bos)
    y = (c.doc < len(pos)).astype(np.int64)  # (n,) token labels from their document
    w, b, auc_t, auc_d, auc_s = fit_concept_probe(c.resid, y, c.doc, l2, seed=seed)
    return ConceptProbe(w, b, concept, layer, auc_t, auc_d, auc_s, (len(pos), len(neg)))
