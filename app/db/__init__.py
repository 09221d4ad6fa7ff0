"""PostgreSQL access: the pool and the migration runner."""
