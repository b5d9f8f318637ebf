"""``payhooks offsets show | reset``: the worker group's committed offsets."""

import click

from payhooks.commands._stub import stub_command


@click.group()
def offsets() -> None:
    """The worker group's committed offsets: show, reset."""


for _name in ("show", "reset"):
    offsets.add_command(stub_command(_name, f"offsets {_name}"))
