"""Token-level data filtering (Rathi & Radford 2026): SAE token labels (lmlab.sae.label) -> a distilled classifier
(a biLM of two lmlab GPTs + an L-BFGS logistic probe: bilm.py, probe.py) -> p(forget) per token of a prepared
dataset in the shards' float16 side channel -> filtered pretraining (loss masking / token removal in lm/train.py,
document filtering) -> the compute slowdown. Reference: shared/reference/token_filtering_sae.md §2."""
