"""Flax networks: ASMNet and MobileNetV2, their layers and the CPU-fast convolution kernels."""
