"""Use cases: one function per action, shared by the HTTP API and the CLI."""
