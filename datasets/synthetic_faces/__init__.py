"""`synthetic_faces`: procedurally rendered faces with exact landmarks and pose (see README.md)."""
