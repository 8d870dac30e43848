"""The command line: every command (the lab's included), progress and output. A thin layer
over the rest of fleet; nothing else imports it."""

from fleet.cli.main import cli, main

__all__ = ["cli", "main"]
