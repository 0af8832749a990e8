"""Issue 5 science: mean 1-D meta-neuron AUC vs GLP held-out loss across GLP checkpoints on one store.

usage: python experiments/glp_apps_family.py --store STORE --out DIR LABEL=SPEC [LABEL=SPEC ...]
SPEC is a GLP run directory (glp.safetensors), or RUN_DIR:CKPT.safetensors (a copy of RUN/ckpt/model.safetensors:
the denoiser weights of an intermediate step, with RUN's normaliser), or RUN_DIR:init (the untrained network).
Writes DIR/family.json and DIR/family.png.
"""

import argparse
from pathlib import Path

import torch


def load_spec(spec: str):
    from safetensors.torch import load_file

    from lmlab.acts.store import ActivationStore
    from lmlab.glp.load import load_glp
    from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer
    from lmlab.io import read_json

    run, _, ckpt = spec.partition(":")
    if ckpt:  # the trainer's normaliser: the store's statistics (the run may not have finished)
        cfg = read_json(Path(run) / "config.json")
        st = ActivationStore.open(cfg["store"]).stats
        glp = GLP(Denoiser(DenoiserConfig(**cfg["net"])), Normalizer(st["mean"], st["var"]))
    else:
        glp = load_glp(run)
    if ckpt == "init":
        torch.manual_seed(0)
        for m in glp.net.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    elif ckpt:
        glp.net.load_state_dict(load_file(ckpt))
    return glp.eval()


def main():
    from lmlab.glp.probe import ProbeConfig, family_plot, probe_family
    from lmlab.io import write_json

    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--docs-per-domain", type=int, default=100)
    ap.add_argument("specs", nargs="+")
    a = ap.parse_args()
    glps = {s.split("=", 1)[0]: load_spec(s.split("=", 1)[1]) for s in a.specs}
    cfg = ProbeConfig(store=a.store, docs_per_domain=a.docs_per_domain)
    rows = probe_family(glps, cfg, a.sigma)
    out = Path(a.out)
    write_json(out / "family.json", {"store": a.store, "sigma": a.sigma, "specs": a.specs, "rows": rows})
    family_plot(rows, out / "family.png")


if __name__ == "__main__":
    main()
