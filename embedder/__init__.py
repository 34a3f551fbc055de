"""Survey readers, augmentations, the self-supervised encoder, and its training and encoding jobs."""
