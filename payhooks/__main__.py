"""``python -m payhooks``: the same as the ``payhooks`` command."""

from payhooks.cli import main

main()
