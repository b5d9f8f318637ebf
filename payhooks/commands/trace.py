"""``payhooks trace``: one payment's timeline across every topic and Redis."""

from payhooks.commands._stub import stub_command

trace = stub_command("trace", "trace")
