"""FAISS indexes over the embeddings, with a manifest that ties them to the model that made them."""
