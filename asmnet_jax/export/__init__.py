"""Export of the BN-folded network to StableHLO and ONNX."""
