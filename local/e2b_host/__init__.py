"""A local E2B-compatible sandbox host for development and tests (NOT a security boundary).

Run it with ``python -m local.e2b_host --port 49982`` and point the unmodified SDK at it with
``E2B_API_URL`` / ``E2B_SANDBOX_URL`` (see ``local.e2b_host.testing``).
"""

__version__ = "0.1.0"
