"""glp: generative meta-models of activations (Luo et al. 2026). In progress: net.py, flow.py."""
