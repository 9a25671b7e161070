"""Training: the config schema, the train state, the jitted data-parallel step and loop, checkpoints and precise BatchNorm."""
