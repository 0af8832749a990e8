"""sae: sparse autoencoders (TopK / BatchTopK with AuxK) trained on activation stores.

    from lmlab.sae import load_sae                   # an lmlab SAE run or a SAELens folder
    sae = load_sae("runs/sae")                       # sae.encode(x) / sae.decode(f) on raw activations
    from lmlab.sae.train import SAETrainConfig, train_sae

Names resolve lazily so `import lmlab.sae` stays light.
"""

_LAZY = {"load_sae": "lmlab.sae.saelens", "export_saelens": "lmlab.sae.saelens",
         "SparseAutoencoder": "lmlab.sae.model", "SAEConfig": "lmlab.sae.model",
         "SAETrainConfig": "lmlab.sae.train", "train_sae": "lmlab.sae.train"}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
