"""FastStream NATS subscribers of the `consumers` role; each module exposes register(broker, deps)."""
