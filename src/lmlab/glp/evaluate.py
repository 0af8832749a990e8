"""Sample-quality metrics for a GLP: held-out diffusion loss, Fréchet distance (FD) against held-out real
activations, and a classifier two-sample test.

FD (Heusel et al. 2017) compares Gaussian fits only: a Gaussian N(mu, Sigma) of the training activations sits
at the FD floor by construction yet a small MLP separates it from real activations ~93% of the time
(glp_cpu_baseline.md). So every FD comes with the held-out accuracy of a classifier trained to tell the set
from real data (Lopez-Paz & Oquab 2017; 0.5 = indistinguishable), and with two references: the floor
(training rows vs held-out rows) and the Gaussian baseline. Real references are drawn at random positions
from many documents (the held-out documents of glp/train.py), never contiguous positions of a few.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmlab.errors import ConfigError
from lmlab.glp.flow import get_sigmas, sample_euler
from lmlab.glp.net import GLP
from lmlab.stats import wilson_ci

_CTX_HINT = ("use generate_in_context (samples at real held-out positions, conditioned on their real preceding "
             "activations), e.g. lmlab glp sample --store STORE")


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2), in float64 via symmetric eigendecompositions."""
    a, b = a.double(), b.double()
    mu = a.mean(0) - b.mean(0)
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(ca)
    s = (v * w.clamp_min(0).sqrt()) @ v.T  # Ca^1/2
    cross = torch.linalg.eigvalsh(s @ cb @ s).clamp_min(0).sqrt().sum()
    return float(mu @ mu + torch.trace(ca) + torch.trace(cb) - 2 * cross)


def classifier_test_size(n: int) -> int:
    """Rows in the classifier's held-out split when each set contributes n rows (the 20% of 2n)."""
    return 2 * n - int(0.8 * 2 * n)


def classifier_accuracy(real: torch.Tensor, other: torch.Tensor, seed: int = 0, epochs: int = 30) -> float:
    """Held-out accuracy of an MLP (d -> 512 -> 1, z-scored with the real set's statistics) telling `other`
    from `real`; 80/20 split of each set, balanced."""
    return float(classifier_correct(real, other, seed, epochs).float().mean())


def classifier_correct(real: torch.Tensor, other: torch.Tensor, seed: int = 0, epochs: int = 30) -> torch.Tensor:
    """Per test row (classifier_test_size(n),): was it classified right (classifier_accuracy's test split);
    the unit a bootstrap over test rows (and over GLP seeds) resamples."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(real), len(other))
    mean, std = real.mean(0), real.std(0).clamp_min(1e-6)
    x = torch.cat([(real[:n] - mean) / std, (other[:n] - mean) / std]).float()
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    perm = torch.randperm(2 * n, generator=g)
    cut = 2 * n - classifier_test_size(n)
    tr, te = perm[:cut], perm[cut:]
    torch.manual_seed(seed)
    clf = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 512), torch.nn.ReLU(), torch.nn.Linear(512, 1))
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = tr[torch.randperm(len(tr), generator=g)]
        for i in range(0, len(order), 256):
            idx = order[i:i + 256]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(clf(x[idx]).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return (clf(x[te]).squeeze(1) > 0).float() == y[te]


@torch.no_grad()
def generate(glp: GLP, n: int, steps: int, seed: int = 0, batch: int = 4096) -> torch.Tensor:
    """n raw activations sampled from noise with `steps` Euler steps on the paper's grid (single-token priors;
    a sequence-aware prior samples with generate_in_context)."""
    if glp.net.cfg.context:
        raise ConfigError(f"a context GLP (context={glp.net.cfg.context}) has no unconditional samples", _CTX_HINT)
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        z = torch.randn(min(batch, n - i), glp.net.cfg.d_in, generator=g)
        out.append(glp.decode(sample_euler(glp, z, get_sigmas(steps))))
    return torch.cat(out)


@torch.no_grad()
def generate_in_context(glp: GLP, store, rows: np.ndarray, steps: int, seed: int = 0, batch: int = 4096,
                        index: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples, real), both raw (n, d): for each store row, one sample of a sequence-aware prior (the
    paper's Euler sampler from noise) conditioned on that row's real preceding activations (context.py), and the
    real activation at that position. Samples and real rows thus share positions and contexts, so a classifier
    two-sample test asks whether the sample fits its context as well as the real activation (p(x_t | x_<t)),
    not only the marginal. The noise stream is `generate`'s for the same seed. `index`: a precomputed
    context.context_index of the store."""
    from lmlab.glp.context import context_index, gather_context
    from lmlab.glp.train import with_context

    k = glp.net.cfg.context
    index = context_index(store.provenance(), k) if index is None else index
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(rows), batch):
        ctx, mask = gather_context(store, index[rows[i:i + batch]])  # (b, K, d), (b, K)
        z = torch.randn(len(ctx), glp.net.cfg.d_in, generator=g)
        out.append(glp.decode(sample_euler(with_context(glp, glp.encode(ctx), mask), z, get_sigmas(steps))))
    return torch.cat(out), store.get(rows)


def gaussian_baseline(x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n samples of N(mean, cov) fitted to x (the moment-matched baseline FD cannot see past)."""
    g = torch.Generator().manual_seed(seed)
    mu, cov = x.double().mean(0), torch.cov(x.double().T)
    w, v = torch.linalg.eigh(cov)
    z = torch.randn(n, x.shape[1], generator=g, dtype=torch.float64)
    return (mu + (z * w.clamp_min(0).sqrt()) @ v.T).float()


def heldout_real(store, n: int, seed: int = 0):
    """(real, ref, train_rows, held_rows): n held-out real activations at random positions of the held-out documents, n
    training rows (the floor's reference) and the training row indices."""
    from lmlab.acts.store import split_rows

    train, held = split_rows(store)
    rng = np.random.default_rng([seed, 7])
    real = store.get(heldout_rows(held, n, seed, rng))
    ref = store.get(np.sort(rng.choice(train, size=min(n, len(train)), replace=False)))
    return real, ref, train, held


def heldout_rows(held: np.ndarray, n: int, seed: int = 0, rng=None) -> np.ndarray:
    """The sorted held-out store rows whose activations `heldout_real` returns as `real` (same seed)."""
    rng = np.random.default_rng([seed, 7]) if rng is None else rng
    return np.sort(rng.choice(held, size=min(n, len(held)), replace=False))


def score(glp: GLP, x: torch.Tensor, real: torch.Tensor, seed: int = 0) -> dict:
    """FD on z-scored activations (a few massive-activation dimensions dominate the raw FD), raw FD beside it,
    and the classifier two-sample accuracy with its Wilson CI."""
    with torch.no_grad():
        zx, zr = glp.encode(x), glp.encode(real)
    acc, n_test = classifier_accuracy(real, x, seed), classifier_test_size(min(len(real), len(x)))
    # no bootstrap CI for FD: resampling rows with replacement inflates its finite-n bias, so percentile
    # intervals miss the estimate; the train-vs-held-out floor row shows the estimator's noise level instead
    return {"fd": frechet_distance(zx, zr), "fd_raw": frechet_distance(x, real), "acc": acc,
            "acc_ci95": wilson_ci(acc, n_test)}


def evaluate(spec: str | Path, store_path: str | Path | None = None, n: int = 4000,
             steps: tuple[int, ...] = (1, 4, 20, 100), seed: int = 0) -> dict:
    """FD and classifier accuracy of GLP samples (per step count), the floor and the Gaussian baseline,
    all against held-out real activations; plus the held-out diffusion loss. `spec`: any GLP spec
    (load.resolve_glp); the store defaults to a run's own. A sequence-aware prior's samples are drawn at the
    real rows' own positions, conditioned on their real contexts (generate_in_context); the floor and Gaussian
    references stay unconditional."""
    from lmlab.glp.load import glp_context
    from lmlab.glp.train import GLPTrainConfig, heldout_loss, heldout_set
    from lmlab.io import read_json

    glp, store = glp_context(spec, store_path)
    real, ref, train, held = heldout_real(store, n, seed)
    # a run's own held-out settings (seed, eval_rows, sigma); an official checkpoint gets the defaults
    cfg = GLPTrainConfig(**read_json(Path(glp.info.path) / "config.json")) if glp.info.kind == "run" \
        else GLPTrainConfig(store=str(store.path))
    out = {"glp_info": glp.info.describe(), "n_real": len(real),
           "n_heldout_docs": int(len(np.unique(store.provenance(held)["doc"]))),
           "heldout_loss": heldout_loss(glp, heldout_set(store, held, cfg, glp, torch.device("cpu"))),
           "floor": score(glp, ref, real, seed)}
    out["gaussian"] = score(glp, gaussian_baseline(store.get(train[: min(len(train), 50_000)]), len(real), seed),
                            real, seed)
    rows = heldout_rows(held, n, seed) if glp.net.cfg.context else None
    for k in steps:
        x = generate(glp, len(real), k, seed) if rows is None else generate_in_context(glp, store, rows, k, seed)[0]
        out[f"glp_{k}step"] = score(glp, x, real, seed)
    return out


# ---- ΔLM: splice reconstructions into the LM (GLP §3) ---------------------------------------------------
def recon_glp(glp: GLP, h: torch.Tensor, sigma_start: float = 0.5, steps: int = 10, seed: int = 0,
              sel: torch.Tensor | None = None) -> torch.Tensor:
    """Noise raw activations h (n, d) to sigma_start (fresh eps), then Euler back to 0 on an explicit grid
    (steps = 1: the one-step clean estimate). The paper's setting is sigma_start 0.474 with 10 steps.
    A sequence-aware prior needs sel (b, T), the splice's mask of which positions the rows h are (doc-major):
    each row is denoised given the clean rows h of its document's preceding positions (context.context_from_sel)."""
    from lmlab.glp.context import context_from_sel
    from lmlab.glp.train import with_context

    model = glp
    if k := glp.net.cfg.context:
        if sel is None:
            raise ConfigError(f"a context GLP (context={k}) reconstructs rows given their preceding positions",
                              "pass sel, the (b, T) mask of the positions h holds (acts/splice.py does)")
        ctx, mask = context_from_sel(h.float(), sel, k)
        model = with_context(glp, glp.encode(ctx), mask)
    g = torch.Generator().manual_seed(seed)
    z = glp.encode(h.float())
    eps = torch.randn(z.shape, generator=g)
    zt = (1 - sigma_start) * z + sigma_start * eps
    sig = torch.cat([torch.linspace(sigma_start, 0.001, steps), torch.zeros(1)]) if steps > 1 else \
        torch.tensor([sigma_start, 0.0])
    return glp.decode(sample_euler(model, zt, sig)).to(h.dtype)


def glp_splice(glp: GLP, sigma_start: float, steps: int, seed: int = 0):
    """The splice function (acts/splice.py) reconstructing rows with recon_glp; for a sequence-aware prior it
    `wants_sel`, so it is called as fn(rows, sel) and conditions on the real, unspliced preceding activations."""
    if not glp.net.cfg.context:
        return lambda h: recon_glp(glp, h, sigma_start, steps, seed)

    def fn(h: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        return recon_glp(glp, h, sigma_start, steps, seed, sel)

    fn.wants_sel = True
    return fn


def recon_gaussian(glp: GLP, h: torch.Tensor, cov_z: torch.Tensor, sigma_start: float = 0.5,
                   seed: int = 0) -> torch.Tensor:
    """The same noising, denoised by the exact posterior mean under a Gaussian prior N(0, C) in z-space:
    E[z0 | z_t] = a C (a^2 C + s^2 I)^-1 z_t with a = 1 - s, s = sigma_start (the moment-matched baseline)."""
    g = torch.Generator().manual_seed(seed)
    z = glp.encode(h.float()).double()
    s, a = sigma_start, 1 - sigma_start
    zt = a * z + s * torch.randn(z.shape, generator=g, dtype=torch.float64)
    k = a * cov_z @ torch.linalg.inv(a * a * cov_z + s * s * torch.eye(len(cov_z), dtype=torch.float64))
    return glp.decode((zt @ k.T).float()).to(h.dtype)


DELTA_CONDS = ("glp_10step", "glp_1step", "gaussian_prior", "mean_ablation")


def delta_lm(glp: GLP, store_path: str | Path, n_docs: int = 200, seq_len: int = 128, batch: int = 8,
             sigma_start: float = 0.5, seed: int = 0, conds: tuple[str, ...] = DELTA_CONDS, per_doc: bool = False,
             lm=None, base: tuple | None = None) -> dict:
    """LM loss increase when the layer-L residual at every non-special position is replaced by: a GLP
    reconstruction (10 steps and 1 step), a Gaussian-prior reconstruction, or the mean activation (`conds`: a
    subset of DELTA_CONDS). Held-out documents of the corpus's `val` split; the loss is averaged over real tokens
    only (the anchor's script also averages zeroed pad positions, which biases it by length). A sequence-aware
    prior denoises each position given the real (unspliced) preceding positions of its document. per_doc: also
    return each document's summed losses and target count (for bootstraps over documents and GLP seeds);
    lm: an already loaded (model, tokenizer) of the store's model (a sweep of many GLPs loads it once); base:
    the unspliced per-document (ce, n) of the same call's documents (a previous call's per_doc "base" and "n"),
    so a sweep runs the unspliced model once."""
    from lmlab.acts.positions import encode_docs, store_prepend_bos
    from lmlab.acts.splice import paired_delta_ci, splice_losses
    from lmlab.acts.store import ActivationStore
    from lmlab.data.corpus import iter_documents
    from lmlab.models import load_causal_lm

    if unknown := set(conds) - set(DELTA_CONDS):
        raise ConfigError(f"unknown ΔLM condition(s) {sorted(unknown)}", f"choose from {', '.join(DELTA_CONDS)}")
    store = ActivationStore.open(store_path)
    cfg = store.meta["config"]
    model, tok = lm if lm is not None else load_causal_lm(store.model)
    docs = [d.text for _, d in zip(range(n_docs), iter_documents(cfg.get("corpus"), split="val"))]
    prepend_bos = store_prepend_bos(store)
    enc = encode_docs(tok, docs, seq_len, prepend_bos)
    cov_z = torch.cov(glp.encode(store.get(np.arange(min(len(store), 50_000)))).double().T) \
        if "gaussian_prior" in conds else None
    fns = {"glp_10step": glp_splice(glp, sigma_start, 10, seed), "glp_1step": glp_splice(glp, sigma_start, 1, seed),
           "gaussian_prior": lambda h: recon_gaussian(glp, h, cov_z, sigma_start, seed),
           "mean_ablation": lambda h: glp.normalizer.mean.to(h.dtype).expand_as(h)}
    todo = {**({"base": None} if base is None else {}), **{k: fns[k] for k in conds}}
    docs = {name: (d["ce"], d["n"]) for name, d in splice_losses(model, tok, enc, store.layer, todo, batch,
                                                                 prepend_bos).items()}
    if base is not None:
        docs["base"] = tuple(np.asarray(b, dtype=np.float64) for b in base)
        if len(docs["base"][1]) != len(enc) or not np.array_equal(docs["base"][1], docs[conds[0]][1]):
            raise ConfigError("the given base losses are of other documents", "pass base from a call with the same "
                              "store, n_docs and seq_len")
    base, n = docs["base"]
    mean = {k: float(t.sum() / n.sum()) for k, (t, _) in docs.items()}
    out = {"n_docs": len(enc), "n_tokens": int(n.sum()), "base_loss": mean["base"],
           **{f"delta_{k}": mean[k] - mean["base"] for k in conds},
           "ci95": {f"delta_{k}": paired_delta_ci(docs[k][0], n, base) for k in conds}}
    if per_doc:
        out["per_doc"] = {"n": n.tolist(), **{k: t.tolist() for k, (t, _) in docs.items()}}
    return out


# ---- `lmlab glp sample`: raw-space samples to a file ---------------------------------------------------------
@dataclass
class SampleConfig:
    glp: str = ""
    """GLP spec: an lmlab run directory, an official checkpoint folder or a hub id."""
    n: int = 1000
    """Activations to sample."""
    steps: int = 20
    """Euler steps on the paper's grid (glp.md §3: 20 moderate, 100 good, 1000 best; the paper's FD uses 1000)."""
    seed: int = 42
    """Noise seed (the official FD script's 42): the same seed gives the same samples from the same weights."""
    store: str | None = None
    """Also score the samples against this store's held-out rows (FD, classifier accuracy). Required for a
    sequence-aware (context) GLP: it samples at n held-out positions of it, given their real preceding rows."""
    layer: int | None = None
    """The LLM layer (needed only for a multi-layer checkpoint without --store)."""


def sample(cfg: SampleConfig, out: str | Path) -> dict:
    """Sample cfg.n raw activations to OUT (safetensors key `activations`, written atomically; the GLP spec,
    steps, seed, model and layer in its metadata); with cfg.store, FD and classifier accuracy against it."""
    from lmlab.glp.load import glp_context, resolve_glp
    from lmlab.io import save_safetensors

    if min(cfg.n, cfg.steps) < 1:
        raise ConfigError(f"n={cfg.n}, steps={cfg.steps}: both must be >= 1", "pass --n and --steps of 1 or more")
    store = None
    if cfg.store is not None:
        glp, store = glp_context(cfg.glp, cfg.store)
    else:
        glp = resolve_glp(cfg.glp, cfg.layer)
    if glp.net.cfg.context and store is None:
        raise ConfigError(f"a context GLP (context={glp.net.cfg.context}) samples given real preceding activations",
                          "pass --store STORE: it samples at held-out positions of it, given their real context")
    real = None
    if glp.net.cfg.context:
        from lmlab.acts.store import split_rows

        rows = heldout_rows(split_rows(store)[1], cfg.n, cfg.seed)
        x, real = generate_in_context(glp, store, rows, cfg.steps, cfg.seed)
    else:
        x = generate(glp, cfg.n, cfg.steps, cfg.seed)
    info = glp.info
    meta = {"glp": cfg.glp, "glp_kind": info.kind, "steps": cfg.steps, "seed": cfg.seed, "n": cfg.n,
            "model": info.model, "layer": info.layer, "sampler": "euler, get_sigmas(steps)"}
    save_safetensors(out, {"activations": x.contiguous()}, metadata={k: str(v) for k, v in meta.items()})
    res = {"glp_info": info.describe(), "out": str(out), **meta}
    if store is not None:
        real = heldout_real(store, cfg.n, cfg.seed)[0] if real is None else real  # the same rows either way
        res["vs_store"] = {"store": str(store.path), "n_real": len(real), **score(glp, x, real, cfg.seed)}
    return res
