"""Tool kinds the worker runs; each module exposes `async def run(config, ctx)` (see base.py)."""
