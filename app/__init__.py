"""NoETL control plane: server, consumers, workers and gateway."""

__version__ = "0.1.0"
