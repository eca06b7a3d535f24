"""The FastAPI adapter: translate HTTP to commands and results (or errors) back to HTTP, nothing more."""
