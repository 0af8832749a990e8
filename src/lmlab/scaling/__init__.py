"""Scaling laws (Kaplan, Chinchilla, GPT-4 predictable scaling): fit, predict, compute slowdown, sweeps."""
