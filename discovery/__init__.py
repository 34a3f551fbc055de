"""The science of exploring a survey, on embeddings alone: unsupervised anomaly scores, the active-learning model of
what a researcher finds interesting, and tag expansion. numpy and scikit-learn only, so the server, eval and the
benchmarks share one implementation and none of them needs the index, the database or torch to test it."""
