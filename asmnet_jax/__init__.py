"""asmnet-jax: ASMNet face alignment and head pose in JAX/Flax.

The pure, jittable core other projects import: `asmnet_jax.core.asm` (the shape model),
`asmnet_jax.core.losses` and `asmnet_jax.core.metrics`.
"""

__version__ = "0.1.0"
