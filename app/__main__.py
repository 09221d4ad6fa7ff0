"""`python -m app` runs the CLI (the one documented place where app/ reaches the transports)."""

from handlers.cli import main

main()
