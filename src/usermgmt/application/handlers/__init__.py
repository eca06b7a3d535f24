"""One handler per use case: a class built by the container, called as ``await handler(command)``."""
