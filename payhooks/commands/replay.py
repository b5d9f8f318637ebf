"""``payhooks replay``: re-feed a range of a topic into the pipeline."""

from payhooks.commands._stub import stub_command

replay = stub_command("replay", "replay")
