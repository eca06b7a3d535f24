"""Ways in: the HTTP API and the command line."""
