"""`synthetic_faces`: procedurally rendered faces with exact landmarks and pose."""

from datasets.synthetic_faces.synthetic_faces_dataset_builder import Builder  # Registers.

__all__ = ["Builder"]
