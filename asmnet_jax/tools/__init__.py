"""Benchmarks and the paper's ablation (run with python -m asmnet_jax.tools.NAME)."""
