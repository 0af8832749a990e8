"""acts: harvest the residual stream at layer L into a sharded store, and read/write it with hooks.

    from lmlab.acts import harvest, HarvestConfig, ActivationStore
    store = ActivationStore.open("acts/")            # memory-mapped; store.batches(4096, seed=0, rank=r, world=w)

Names resolve lazily so `import lmlab.acts` stays light.
"""

_LAZY = {"harvest": "lmlab.acts.harvester", "HarvestConfig": "lmlab.acts.harvester",
         "ActivationStore": "lmlab.acts.store", "verify_store": "lmlab.acts.store"}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
