"""galsearch: explore a galaxy survey through self-supervised embeddings.

``from galsearch import Survey, Client``: the notebook API (``galsearch.notebook``), imported on first use so that
the command line starts without loading the server.
"""

__version__ = "0.1.0"
__all__ = ["Client", "Survey"]


def __getattr__(name: str):
    if name in __all__:
        from galsearch import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'galsearch' has no attribute {name!r}")
