"""`fleet init` (a commented inventory and playbook to start from) and `fleet completion`
(click's shell completion, as a script to source)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from fleet.cli.terminal import echo

TEMPLATES = ("inventory.yml", "playbook.yml")


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite inventory.yml and playbook.yml there.")
def init(directory: Path, force: bool) -> None:
    """Write a commented inventory.yml and playbook.yml into DIRECTORY (default: here), to
    edit into your own. Nothing is overwritten without --force."""
    targets = [directory / name for name in TEMPLATES]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise click.ClickException(f"{', '.join(existing)} already exist(s); nothing was "
                                   "written (--force overwrites)")
    directory.mkdir(parents=True, exist_ok=True)
    for path in targets:
        text = resources.files("fleet.cli").joinpath("templates", path.name).read_text()
        path.write_text(text)
        echo(f"wrote {path}")
    echo(f"next: edit them, then: fleet validate {directory / 'playbook.yml'}")


SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script of SHELL, to source from its start-up file:

    \b
      bash: eval "$(fleet completion bash)"        in ~/.bashrc
      zsh:  eval "$(fleet completion zsh)"         in ~/.zshrc
      fish: fleet completion fish | source         in ~/.config/fish/config.fish
    """
    from click.shell_completion import get_completion_class

    from fleet.cli.main import cli

    completer = get_completion_class(shell)
    assert completer is not None
    click.echo(completer(cli, {}, "fleet", "_FLEET_COMPLETE").source())
