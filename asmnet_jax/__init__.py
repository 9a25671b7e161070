"""asmnet-jax: ASMNet face alignment and head pose in JAX/Flax.

The pure, jittable core other projects import: `asmnet_jax.asm` (the shape model),
`asmnet_jax.losses` and `asmnet_jax.metrics`.
"""

__version__ = "0.1.0"
