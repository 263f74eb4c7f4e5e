"""One module per route group; each exposes `router`. A route's code is in the module named
after the first segment of its path that is not `api` or `e2b`."""
