"""Sandbox Gateway: stateful, sandboxed code-execution sessions behind one HTTP API."""
