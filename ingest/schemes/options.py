"""Reading an endpoint's provider-specific options and key ring; every error is a ConfigError naming
its key."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from payhooks.config import ConfigError, EndpointSettings

#: options only the simulator reads (``sim_signing_key``, ...): accepted and ignored by schemes
SIM_OPTION_PREFIX = "sim_"

T = TypeVar("T")


def key_ring(endpoint: EndpointSettings) -> tuple[bytes, ...]:
    """Every key of the endpoint's ring as UTF-8 bytes (the HMAC keys of most schemes)."""
    return parsed_key_ring(endpoint, str.encode)


def parsed_key_ring(endpoint: EndpointSettings, parse: Callable[[str], T]) -> tuple[T, ...]:
    """Every key of the ring through ``parse``, first key first.

    A ring that is empty, a key that is empty or not valid text, or one that ``parse`` refuses with
    ValueError is a ConfigError naming ``endpoints.<name>.secrets`` and the key's position (0 =
    first, as ``Verified.key_index`` counts); it never quotes the key, so neither may ``parse``'s
    messages.
    """
    name = f"endpoints.{endpoint.name}.secrets"
    if not endpoint.secrets:
        raise ConfigError(name, "the key ring is empty; give at least one key")
    keys = []
    for index, secret in enumerate(endpoint.secrets):
        where = f"key {index} (0 = first)"
        if not secret.value:
            raise ConfigError(name, f"{where} is empty")
        try:
            secret.value.encode()
        except UnicodeEncodeError:  # a lone surrogate from the environment
            raise ConfigError(name, f"{where} is not valid text") from None
        try:
            keys.append(parse(secret.value))
        except ValueError as exc:
            raise ConfigError(name, f"{where}: {exc}") from None
    return tuple(keys)


class Options:
    """One endpoint's ``options``, each read with its checks.

    Options that the scheme does not name in ``known`` are refused, except the simulator's
    ``sim_*`` options.
    """

    def __init__(self, endpoint: EndpointSettings, known: Iterable[str]) -> None:
        self.values = endpoint.options
        self.prefix = f"endpoints.{endpoint.name}."
        allowed = frozenset(known)
        for name in sorted(self.values):
            if name not in allowed and not name.startswith(SIM_OPTION_PREFIX):
                names = ", ".join(sorted(allowed)) or "none"
                raise ConfigError(self.key(name),
                                  f"unknown option of provider {endpoint.provider}; known: {names}")

    def key(self, name: str) -> str:
        """The dotted configuration key of option ``name``, for a ConfigError."""
        return self.prefix + name

    def text(self, name: str, default: str = "") -> str:
        value = self.values.get(name, default)
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"expected a string, got {type(value).__name__}")
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate from the environment
            raise ConfigError(self.key(name), "is not valid text") from None
        return value

    def optional_text(self, name: str) -> str | None:
        """A non-empty string; None when the option is not set."""
        if name not in self.values:
            return None
        value = self.text(name)
        if not value:
            raise ConfigError(self.key(name), "must be a non-empty string")
        return value

    def choice(self, name: str, allowed: frozenset[str], default: str) -> str:
        value = self.text(name, default).lower()
        if value not in allowed:
            raise ConfigError(self.key(name), f"must be one of {', '.join(sorted(allowed))}")
        return value

    def strings(self, name: str) -> tuple[str, ...] | None:
        """A list option: a TOML list of strings or a comma-separated string (from the
        environment), each part stripped and kept even when empty; None when it is not set."""
        value: Any = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key(name),
                              "expected a list of strings (or a comma-separated string)")
        return tuple(v.strip() for v in value)

    def required_header_name(self, name: str) -> str:
        value = self.header_name(name)
        if value is None:
            raise ConfigError(self.key(name), "is required: the header with the signature")
        return value

    def header_name(self, name: str) -> str | None:
        """A header name, lower-cased for lookup; None when the option is not set."""
        if name not in self.values:
            return None
        value = self.text(name).strip().lower()
        if not value or not value.isascii() or any(c.isspace() or c == ":" for c in value):
            raise ConfigError(self.key(name), "must be an HTTP header name")
        return value

    def field_path(self, name: str) -> str | None:
        if name not in self.values:
            return None
        value = self.text(name)
        if not value or "" in value.split("."):
            raise ConfigError(self.key(name), "must be a dotted JSON path like data.id")
        return value

    def either_or(self, header_option: str, field_option: str) -> str | None:
        """``field_option``'s path, refusing it when ``header_option`` is set too."""
        if header_option in self.values and field_option in self.values:
            raise ConfigError(self.key(field_option), f"set {header_option} or this, not both")
        return self.field_path(field_option)

    def media_types(self, name: str, default: Sequence[str]) -> frozenset[str]:
        values = self.strings(name)
        if values is None:
            values = tuple(default)
        types = frozenset(v.split(";", 1)[0].strip().lower() for v in values) - {""}
        if not types or not all("/" in t for t in types):
            raise ConfigError(self.key(name), "expected media types like application/json")
        return types
