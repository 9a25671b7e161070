"""Pure, jittable math: the shape model (ASM), losses, metrics, rotations, head pose and crop geometry; needs only jax and numpy."""
