"""Datasets and input: the TFDS registry and builder helpers, image decoding, face crops, augmentation and the grain pipelines."""
