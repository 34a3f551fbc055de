"""galsearch: explore a galaxy survey through self-supervised embeddings."""

__version__ = "0.1.0"
