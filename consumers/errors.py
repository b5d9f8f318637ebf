"""The workers' error tree: poison goes to the DLQ, everything else is retried.

    ConsumerError
    ├── Poison                  the record itself is bad; retrying cannot help -> webhooks.dlq
    │   ├── DecodeError         the value is not a valid envelope          (stage "decode")
    │   └── NormalizeError      the provider event cannot be made canonical (stage "normalize")
    └── Retryable               the world is bad (Kafka, Redis); pause, back off, try again
"""

from __future__ import annotations

from typing import ClassVar


class ConsumerError(Exception):
    pass


class Poison(ConsumerError):
    stage: ClassVar[str] = "apply"


class DecodeError(Poison):
    stage = "decode"


class NormalizeError(Poison):
    stage = "normalize"


class Retryable(ConsumerError):
    pass
