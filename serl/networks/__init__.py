"""Small Flax modules: MLP, critic ensemble, pixel encoders, the tanh-Gaussian policy head."""
