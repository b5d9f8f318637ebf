"""Configuration: TOML, environment overrides, *_file secrets, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from payhooks.config import ConfigError, Secret, load_settings

TOML = """
[kafka]
bootstrap_servers = "kafka:9092"

[endpoints.stripe-eu]
provider = "stripe"
secrets = ["whsec_new", "whsec_old"]

[endpoints.adyen]
provider = "adyen"
secrets = ["44782DEF"]
basic_auth = { username = "adyen", password_file = "PASSWORD_FILE" }
merchant_account = "Acme"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    password = tmp_path / "adyen_basic"
    password.write_text("s3cret-pass\n")
    path = tmp_path / "payhooks.toml"
    path.write_text(TOML.replace("PASSWORD_FILE", str(password)))
    return path


def test_file_values_and_defaults_are_read(config_file: Path) -> None:
    settings = load_settings(config_file, environ={})
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.redis.url == "redis://localhost:6379/0"
    assert settings.topics.raw == "webhooks.raw"
    assert settings.ingest.publish_timeout_seconds == 5.0
    assert settings.ingest.max_body_bytes == 1024 * 1024
    assert [s.value for s in settings.endpoints["stripe-eu"].secrets] == ["whsec_new", "whsec_old"]
    assert settings.endpoints["adyen"].options == {"merchant_account": "Acme"}


def test_password_file_is_read_without_its_newline(config_file: Path) -> None:
    auth = load_settings(config_file, environ={}).endpoints["adyen"].basic_auth
    assert auth is not None
    assert auth.password.value == "s3cret-pass"


def test_environment_overrides_file_values(config_file: Path) -> None:
    settings = load_settings(config_file, environ={
        "PAYHOOKS_KAFKA__BOOTSTRAP_SERVERS": "other:9092",
        "PAYHOOKS_INGEST__PORT": "9000",
        "PAYHOOKS_ENDPOINTS__STRIPE_EU__SECRETS": "whsec_a, whsec_b",
    })
    assert settings.kafka.bootstrap_servers == "other:9092"
    assert settings.ingest.port == 9000
    assert [s.value for s in settings.endpoints["stripe-eu"].secrets] == ["whsec_a", "whsec_b"]


def test_environment_password_wins_over_password_file(config_file: Path) -> None:
    settings = load_settings(config_file, environ={
        "PAYHOOKS_ENDPOINTS__ADYEN__BASIC_AUTH__PASSWORD": "from-env"})
    auth = settings.endpoints["adyen"].basic_auth
    assert auth is not None
    assert auth.password.value == "from-env"


def test_secrets_file_holds_one_key_per_line(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    ring.write_text("whsec_one\n\nwhsec_two\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[endpoints.s]\nprovider = "stripe"\nsecrets_file = "{ring}"\n')
    settings = load_settings(path, environ={})
    assert [s.value for s in settings.endpoints["s"].secrets] == ["whsec_one", "whsec_two"]


def test_config_path_comes_from_environment(config_file: Path) -> None:
    settings = load_settings(environ={"PAYHOOKS_CONFIG": str(config_file)})
    assert settings.source == str(config_file)


def test_missing_named_file_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"PAYHOOKS_CONFIG": str(tmp_path / "nope.toml")})
    assert err.value.key == "PAYHOOKS_CONFIG"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[ingest]\nport = "eighty"\n', "ingest.port"),
        ("[kafka]\nbootstrap = 1\n", "kafka.bootstrap"),
        ("[kafak]\n", "kafak"),
        ('[endpoints.x]\nprovider = "venmo"\nsecrets = ["k"]\n', "endpoints.x.provider"),
        ('[endpoints.x]\nprovider = "stripe"\nsecrets = []\n', "endpoints.x.secrets"),
        ('[endpoints.x]\nprovider = "stripe"\nsecrets_file = "/nonexistent/ring"\n',
         "endpoints.x.secrets_file"),
    ],
)
def test_errors_name_the_offending_key(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert err.value.key == key


def test_environment_value_of_wrong_type_names_the_key(config_file: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(config_file, environ={"PAYHOOKS_INGEST__MAX_BODY_BYTES": "lots"})
    assert err.value.key == "ingest.max_body_bytes"


def test_settings_are_frozen(config_file: Path) -> None:
    settings = load_settings(config_file, environ={})
    with pytest.raises(AttributeError):
        settings.kafka.bootstrap_servers = "x"  # type: ignore[misc]


def test_secret_never_shows_its_value() -> None:
    secret = Secret("whsec_topsecret")
    assert "topsecret" not in repr(secret)
    assert "topsecret" not in str(secret)
    assert "topsecret" not in repr((secret,))


def test_paypal_endpoint_needs_no_shared_secret(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[endpoints.pp]\nprovider = "paypal"\nwebhook_id = "1JE4291016473214C"\n')
    assert load_settings(path, environ={}).endpoints["pp"].secrets == ()
