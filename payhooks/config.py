"""Settings read once from one TOML file, environment overrides and secret files into frozen values.

Sources, later ones winning:

1. the TOML file named by ``PAYHOOKS_CONFIG`` (default ``./payhooks.toml``; a missing default file
   means "all defaults, no endpoints"; a missing named file is an error);
2. environment variables ``PAYHOOKS_<SECTION>__<KEY>`` (nested with ``__``), for example
   ``PAYHOOKS_KAFKA__BOOTSTRAP_SERVERS`` or ``PAYHOOKS_ENDPOINTS__STRIPE_EU__SECRETS`` (a
   comma-separated key ring; ``_`` in an endpoint name also matches ``-``);
3. any ``<key>_file`` names a file whose content becomes ``<key>`` (the Docker/Kubernetes secret
   convention); for ``secrets_file`` every non-empty line is one key of the ring.

Every error is a :class:`ConfigError` that names the offending key.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from schemas import wire

ENV_PREFIX = "PAYHOOKS_"
ENV_CONFIG = "PAYHOOKS_CONFIG"
DEFAULT_CONFIG_PATH = Path("payhooks.toml")

#: provider schemes an endpoint may name (SPEC "HTTP interface")
PROVIDERS = frozenset(
    {
        "stripe",
        "adyen",
        "braintree",
        "paypal",
        "checkout",
        "square",
        "gocardless",
        "razorpay",
        "mollie",
        "standard",
        "hmac",
    }
)


#: providers that share no secret with us (PayPal signs with its certificate's private key; the
#: endpoint's ring is its `webhook_id` list instead)
PROVIDERS_WITHOUT_SECRETS = frozenset({"paypal"})


class ConfigError(Exception):
    """The configuration is unusable; ``key`` is the dotted name of the offending setting."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret string that never shows itself in a repr, a log line or a traceback."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def encode(self) -> bytes:
        return self.value.encode("utf-8")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap_servers: str = "localhost:9092"
    client_id: str = "payhooks"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = "redis://localhost:6379/0"
    key_prefix: str = "payhooks:"


@dataclass(frozen=True, slots=True)
class TopicSettings:
    raw: str = wire.TOPIC_RAW
    events: str = wire.TOPIC_EVENTS
    transitions: str = wire.TOPIC_TRANSITIONS
    state: str = wire.TOPIC_STATE
    dlq: str = wire.TOPIC_DLQ
    audit: str = wire.TOPIC_AUDIT
    snapshots: str = wire.TOPIC_SNAPSHOTS

    def by_role(self) -> dict[str, str]:
        """Logical role (``raw``, ``events``, ...) to the configured topic name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class IngestSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    publish_timeout_seconds: float = 5.0  # deadline for Kafka to acknowledge every record
    retry_after_seconds: int = 5  # the Retry-After of a 503
    max_in_flight: int = 512  # requests handled at once; more get a fast 503


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    group_id: str = "payhooks-workers"
    batch_max_records: int = 500
    poll_timeout_ms: int = 500
    #: how long the stored decision of a batch whose commit failed is kept for its re-read
    #: (committed batches' decisions are deleted at once): restart the workers within it
    dedupe_ttl_seconds: int = 35 * 24 * 3600
    parking_window_seconds: int = 15 * 60
    session_timeout_ms: int = 10_000  # how soon a dead worker's partitions move to the others


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "json"  # "json" for machines, "console" for people


#: where finished spans go: nowhere (the default, no tracing SDK loaded), an OTLP/HTTP collector,
#: or stdout (one JSON document per span, for a look on a laptop)
TRACING_EXPORTERS = ("off", "otlp", "console")


@dataclass(frozen=True, slots=True)
class TracingSettings:
    exporter: str = "off"  # one of TRACING_EXPORTERS
    otlp_endpoint: str = "http://localhost:4318/v1/traces"  # the collector's OTLP/HTTP traces URL
    service_name: str = ""  # empty: "payhooks-receiver" / "payhooks-worker"
    sample_ratio: float = 1.0  # share of new traces kept; a request's sampled flag wins

    @property
    def enabled(self) -> bool:
        return self.exporter != "off"


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: str
    password: Secret


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """One ``[endpoints.<name>]`` table: a provider scheme bound to a key ring."""

    name: str
    provider: str
    secrets: tuple[Secret, ...]
    tolerance_seconds: int = 300
    basic_auth: BasicAuth | None = None
    #: provider-specific settings (Square ``notification_url``, PayPal ``webhook_id``, ...),
    #: checked by the provider's scheme when the receiver is built
    options: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Settings:
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    topics: TopicSettings = TopicSettings()
    ingest: IngestSettings = IngestSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    log: LogSettings = LogSettings()
    tracing: TracingSettings = TracingSettings()
    endpoints: Mapping[str, EndpointSettings] = field(
        default_factory=lambda: types.MappingProxyType({})
    )
    source: str = "<defaults>"


_SECTIONS: dict[str, type] = {
    "kafka": KafkaSettings,
    "redis": RedisSettings,
    "topics": TopicSettings,
    "ingest": IngestSettings,
    "consumer": ConsumerSettings,
    "log": LogSettings,
    "tracing": TracingSettings,
}

T = TypeVar("T")


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the configuration once; see the module docstring for the sources and their order."""
    env = os.environ if environ is None else environ
    config_path, explicit = _config_path(path, env)
    raw = _read_toml(config_path, explicit)
    _apply_env_overrides(raw, env)
    _resolve_files(raw, "")
    return _build_settings(raw, str(config_path) if config_path.exists() else "<defaults>")


def _config_path(path: str | Path | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    if path is not None:
        return Path(path), True
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]), True
    return DEFAULT_CONFIG_PATH, False


def _read_toml(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise ConfigError(ENV_CONFIG, f"configuration file {path} does not exist")
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read ({exc.strerror})") from None


def _apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Set ``PAYHOOKS_A__B__C=value`` as ``raw[a][b][c] = value`` (strings; coerced later)."""
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if path[0] == "endpoints" and len(path) >= 2:
            path[1] = _endpoint_name(raw.get("endpoints", {}), path[1])
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(path), f"{name} addresses inside a non-table value")
            node = child
        leaf = path[-1]
        node[leaf] = env[name]
        # a value set from the environment wins over the same key's *_file from the file, and back
        other = leaf[: -len("_file")] if leaf.endswith("_file") else f"{leaf}_file"
        node.pop(other, None)


def _endpoint_name(endpoints: Any, env_name: str) -> str:
    """Match an environment name (``STRIPE_EU``) to a configured endpoint (``stripe-eu``)."""
    if isinstance(endpoints, dict):
        for configured in endpoints:
            if configured.lower().replace("-", "_") == env_name:
                return str(configured)
    return env_name


def _resolve_files(node: dict[str, Any], prefix: str) -> None:
    """Replace every ``<key>_file`` by ``<key>`` holding the file's content."""
    for key in list(node):
        value = node[key]
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _resolve_files(value, f"{dotted}.")
            continue
        if not key.endswith("_file"):
            continue
        target = key[: -len("_file")]
        if target in node:
            raise ConfigError(dotted, f"set both {target} and {key}; keep one")
        if not isinstance(value, str):
            raise ConfigError(dotted, "must be a file path")
        try:
            content = Path(value).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(dotted, f"cannot read {value} ({exc.strerror})") from None
        lines = [line.strip() for line in content.splitlines() if line.strip()]
        if target == "secrets":
            node[target] = lines
        else:
            node[target] = content.rstrip("\r\n")
        del node[key]


def _build_settings(raw: dict[str, Any], source: str) -> Settings:
    unknown = set(raw) - set(_SECTIONS) - {"endpoints"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"unknown section; known: {', '.join(_SECTIONS)}")
    built: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table")
        built[section] = _build_dataclass(cls, table, section)
    _check_tracing(built["tracing"])
    endpoints = raw.get("endpoints", {})
    if not isinstance(endpoints, dict):
        raise ConfigError("endpoints", "must be a table of endpoint tables")
    built["endpoints"] = types.MappingProxyType(
        {name: _build_endpoint(name, table) for name, table in endpoints.items()}
    )
    return Settings(**built, source=source)


def _check_tracing(tracing: TracingSettings) -> None:
    if tracing.exporter not in TRACING_EXPORTERS:
        known = ", ".join(TRACING_EXPORTERS)
        raise ConfigError("tracing.exporter", f"must be one of {known}; got {tracing.exporter!r}")
    if not 0.0 <= tracing.sample_ratio <= 1.0:
        raise ConfigError("tracing.sample_ratio",
                          f"must be between 0 and 1; got {tracing.sample_ratio!r}")
    if tracing.exporter == "otlp" and not tracing.otlp_endpoint.startswith(("http://", "https://")):
        raise ConfigError("tracing.otlp_endpoint",
                          f"must be an http:// or https:// URL; got {tracing.otlp_endpoint!r}")


def _build_endpoint(name: str, table: Any) -> EndpointSettings:
    key = f"endpoints.{name}"
    if not isinstance(table, dict):
        raise ConfigError(key, "must be a table")
    table = dict(table)
    provider = table.pop("provider", None)
    if provider not in PROVIDERS:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"{key}.provider", f"must be one of {known}; got {provider!r}")
    secrets = _coerce(table.pop("secrets", []), tuple[str, ...], f"{key}.secrets")
    if not secrets and provider not in PROVIDERS_WITHOUT_SECRETS:
        raise ConfigError(f"{key}.secrets", "the key ring is empty; give at least one key")
    tolerance = _coerce(table.pop("tolerance_seconds", 300), int, f"{key}.tolerance_seconds")
    basic_auth = _build_basic_auth(table.pop("basic_auth", None), f"{key}.basic_auth")
    return EndpointSettings(
        name=name,
        provider=provider,
        secrets=tuple(Secret(s) for s in secrets),
        tolerance_seconds=tolerance,
        basic_auth=basic_auth,
        options=types.MappingProxyType(table),
    )


def _build_basic_auth(table: Any, key: str) -> BasicAuth | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(key, "must be a table with username and password (or password_file)")
    username = table.get("username")
    password = table.get("password")
    if not isinstance(username, str) or not username:
        raise ConfigError(f"{key}.username", "is required")
    if not isinstance(password, str) or not password:
        raise ConfigError(f"{key}.password", "is required (or password_file)")
    return BasicAuth(username=username, password=Secret(password))


def _build_dataclass(cls: type[T], table: dict[str, Any], section: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(table) - names
    if unknown:
        bad = sorted(unknown)[0]
        raise ConfigError(f"{section}.{bad}", f"unknown key; known: {', '.join(sorted(names))}")
    values = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in table.items()}
    return cls(**values)


def _coerce(value: Any, kind: Any, key: str) -> Any:
    """Turn a TOML value or an environment string into ``kind``, naming ``key`` on failure."""
    if typing.get_origin(kind) is tuple:
        return _to_strings(value, key)
    converter = _CONVERTERS.get(kind)
    if converter is None:  # pragma: no cover - a settings class with an unsupported field type
        raise ConfigError(key, f"unsupported setting type {kind!r}")
    return converter(value, key)


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
        return value.lower() in {"true", "1", "yes"}
    raise ConfigError(key, f"expected true or false, got {value!r}")


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ConfigError(key, f"expected an integer, got {value!r}")


def _to_float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(key, f"expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ConfigError(key, f"expected a number, got {value!r}") from None


def _to_str(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(key, f"expected a string, got {value!r}")


def _to_strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "expected a list of strings (or a comma-separated string)")
    return tuple(value)


_CONVERTERS: dict[Any, Callable[[Any, str], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
}
