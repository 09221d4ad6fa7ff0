"""Secret providers (secrets.md §5)."""
