"""``payhooks dlq list | show | redrive``: dead letters."""

import click

from payhooks.commands._stub import stub_command


@click.group()
def dlq() -> None:
    """Dead letters: list, show, redrive."""


for _name in ("list", "show", "redrive"):
    dlq.add_command(stub_command(_name, f"dlq {_name}"))
