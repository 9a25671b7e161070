"""The TFDS builders, one folder a dataset; installed as the package `asmnet_jax_datasets`
(see `asmnet_jax.data.registry`), so that nothing here takes the name `datasets`."""
