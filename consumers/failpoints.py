"""Named points where crash tests make a worker die: ``PAYHOOKS_FAILPOINT=<step>[:<probability>]``.

Steps, in the order a batch passes them: ``after_poll``, ``after_redis`` (a decision is stored),
``after_produce`` (outputs sent, transaction open), ``before_commit``, ``during_commit``. With no
variable set, :func:`reached` is a dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import random
import signal

STEPS = ("after_poll", "after_redis", "after_produce", "before_commit", "during_commit")


def _parse(value: str) -> tuple[str, float] | None:
    if not value:
        return None
    step, _, chance = value.partition(":")
    if step not in STEPS:
        raise ValueError(f"PAYHOOKS_FAILPOINT: unknown step {step!r}; known: {', '.join(STEPS)}")
    return step, float(chance or 1.0)


_ARMED = _parse(os.environ.get("PAYHOOKS_FAILPOINT", ""))


def armed(step: str) -> bool:
    return _ARMED is not None and _ARMED[0] == step


def reached(step: str) -> None:
    """Die at once (SIGKILL: no clean-up at all) if this step is armed and the dice say so."""
    if _ARMED is not None and _ARMED[0] == step and random.random() < _ARMED[1]:  # noqa: S311
        os.kill(os.getpid(), signal.SIGKILL)
