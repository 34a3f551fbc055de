"""The data layer, torch-free: the demo survey generator, catalogue and cutout readers, ingest into the packed
store, and the workdir every later stage reads and writes (first stage of the data's path)."""
