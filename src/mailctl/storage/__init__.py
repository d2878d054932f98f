"""Persistence: tables, queries, the unit of work and migrations (the only SQLAlchemy user)."""
