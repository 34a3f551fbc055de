"""The FastAPI server: similarity search, thumbnails and the gallery over a built workdir."""
