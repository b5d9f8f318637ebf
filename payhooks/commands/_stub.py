"""A placeholder for a command not built yet: it says so and exits 2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from payhooks.clikit import EXIT_USAGE, fail


def not_yet(name: str) -> Callable[..., None]:
    """A click callback that refuses to run ``payhooks name`` because it does not exist yet."""

    def command(**_kwargs: Any) -> None:
        fail(f"`payhooks {name}` is not implemented yet (on-call tooling).", EXIT_USAGE)

    command.__doc__ = "Not implemented yet (on-call tooling)."
    return command


def stub_command(name: str, full_name: str) -> click.Command:
    """A command accepting any arguments that only says it is not built yet."""
    return click.command(name, context_settings={"ignore_unknown_options": True})(
        click.argument("args", nargs=-1, type=click.UNPROCESSED)(not_yet(full_name)))
