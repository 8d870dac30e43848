"""`fleet lab` commands."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """Bring up a local lab fleet (network namespaces with sshd and dockerd)."""
