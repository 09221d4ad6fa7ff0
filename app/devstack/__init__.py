"""Embedded PostgreSQL and NATS for development and tests (no services installed)."""
