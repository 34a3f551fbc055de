"""Survey sources: the deterministic synthetic demo survey (first stage of the data's path)."""
