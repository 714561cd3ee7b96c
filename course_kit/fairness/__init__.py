"""Fairness in the latent space: a tiny CLIP, proxy routing, group metrics and concept erasure (Lab 07)."""
