"""Names of the files the embedder leaves in a workdir, shared with the index builder (torch-free on purpose:
the index builder and the server import this without loading torch)."""

EMBEDDINGS = "embeddings.npy"  # (N, dim) float32, L2-normalised: what the index searches
EMBEDDING_IDS = "embedding_ids.npy"  # (N,) ids aligned with the rows of EMBEDDINGS
EMBEDDING_INFO = "embeddings.json"  # model checksum, dim, count, TTA, PCA
EMBEDDINGS_FULL = "embeddings_full.npy"  # the encoder's full-dimension vectors, kept when PCA reduces EMBEDDINGS
PCA_FILE = "pca.npz"  # mean, components and explained variance of that reduction
EMBED_PROGRESS = "embeddings.progress.json"  # rows already encoded, for a resumed job
MORPHOMETRY = "morphometry.npy"  # (N, 9) float32: embedder/morphometry.NAMES (NaN: unmeasured)
MORPHOMETRY_FILE = "morphometry.npz"  # their names, units, survey quantiles and the weight they have in EMBEDDINGS
