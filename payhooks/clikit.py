"""What every ``payhooks`` command shares: exit codes, the configuration, failing and output.

Exit codes: 0 done, 1 failed, 2 usage error (or not built yet), 3 refused by a safety check.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
import orjson

from payhooks import logging as plog
from payhooks.config import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


def settings_of(ctx: click.Context) -> Settings:
    """The configuration, read once per process; a ConfigError is a usage error naming the key."""
    obj = ctx.find_root().ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except ConfigError as exc:
            fail(f"configuration error: {exc}\n  (file: PAYHOOKS_CONFIG or --config)", EXIT_USAGE)
        plog.configure(obj["settings"].log.level, obj["settings"].log.format)
    settings: Settings = obj["settings"]
    return settings


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``payhooks: message`` on stderr and exit with ``code``."""
    click.echo(f"payhooks: {message}", err=True)
    sys.exit(code)


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    """Print ``data`` as indented JSON for scripts, or call ``human`` to print it for people."""
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        human()
