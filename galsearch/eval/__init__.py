"""Evaluation of a built workdir against labels: neighbour precision, probes, baselines, tag expansion and the
anomaly search, with figures."""
