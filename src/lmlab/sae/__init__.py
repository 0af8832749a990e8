"""sae: sparse autoencoders (TopK / BatchTopK with AuxK) trained on activation stores.

    from lmlab.sae.train import SAETrainConfig, train_sae
    from lmlab.sae.model import SparseAutoencoder    # encode(x) / decode(f) in raw activation space

Names resolve lazily so `import lmlab.sae` stays light.
"""
