"""Representation: augmentations, the self-supervised encoder, its objectives, training and encoding jobs, and
the classical morphometry appended to its embeddings."""
