"""deploy/ files parse and agree with the code (no Docker engine here, so checked statically)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from payhooks import stack
from payhooks.config import TopicSettings, load_settings
from payhooks.topics import DEFAULT_TOPICS_FILE, load_specs
from tests.unit import deploy_support as support

DEPLOY = support.DEPLOY
PAYHOOKS_SERVICES = ("topics", "receiver", "worker")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  (containers listen on every interface, on purpose)


def _duration_seconds(value: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    assert value, "empty compose duration"
    assert match, f"not a compose duration: {value!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (relative to deploy/) of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def _compose_settings_file(tmp_path: Path, compose: dict[str, Any]) -> Path:
    """The compose configuration with /run/secrets/<name> pointing at the secrets' source files."""
    text = (DEPLOY / "compose" / "payhooks.toml").read_text()
    for name, secret in compose["secrets"].items():
        text = text.replace(f"/run/secrets/{name}", str(DEPLOY / secret["file"]))
    path = tmp_path / "payhooks.toml"
    path.write_text(text)
    return path


# --- the stack services ---------------------------------------------------------------------------


def test_compose_runs_the_pinned_kafka_and_a_persistent_redis_on_the_stack_ports() -> None:
    compose = support.load_compose()
    kafka, redis = compose["services"]["kafka"], compose["services"]["redis"]
    assert kafka["image"] == f"apache/kafka:{stack.KAFKA_VERSION}"
    assert "9092:9092" in kafka["ports"]
    assert "PLAINTEXT://localhost:9092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "6379:6379" in redis["ports"]
    assert "--appendonly" in redis["command"]
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in compose["volumes"], volume


def test_every_image_is_pinned_by_version_tag() -> None:
    compose = support.load_compose()
    for name, service in compose["services"].items():
        image = service["image"]
        _, _, tag = image.rpartition(":")
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
    for ins in support.dockerfile():
        if ins.keyword == "FROM":
            image = ins.value.split()[0]
            assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", image), image


def test_containers_reach_kafka_on_a_listener_it_advertises_to_them(tmp_path: Path) -> None:
    compose = support.load_compose()
    settings = load_settings(_compose_settings_file(tmp_path, compose), environ={})
    kafka_env = compose["services"]["kafka"]["environment"]
    advertised = {
        listener.split("://")[1]: listener.split("://")[0]
        for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    name = advertised[settings.kafka.bootstrap_servers]
    assert f":{settings.kafka.bootstrap_servers.rsplit(':')[1]}" in next(
        listener for listener in kafka_env["KAFKA_LISTENERS"].split(",")
        if listener.startswith(f"{name}://"))
    host, _, port = settings.redis.url.removeprefix("redis://").partition("/")[0].partition(":")
    assert host in compose["services"]
    assert f"{port}:{port}" in compose["services"]["redis"]["ports"]


# --- the payhooks services ------------------------------------------------------------------------


def test_payhooks_services_build_the_dockerfile_and_run_real_commands() -> None:
    compose = support.load_compose()
    for name in PAYHOOKS_SERVICES:
        service = compose["services"][name]
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["image"] == f"payhooks:{support.project_version()}"
        support.check_cli_args(_command(service))
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"


def test_compose_configuration_loads_with_the_mounted_dev_secrets(tmp_path: Path) -> None:
    compose = support.load_compose()
    settings = load_settings(_compose_settings_file(tmp_path, compose), environ={})
    ring = (DEPLOY / compose["secrets"]["stripe_webhook_keys"]["file"]).read_text().split()
    assert [s.value for s in settings.endpoints["stripe"].secrets] == ring
    assert all("demo" in key and "do_not_use" in key for key in ring)
    assert settings.ingest.host == ALL_INTERFACES


def test_every_payhooks_service_mounts_the_configuration_and_every_secret_it_names() -> None:
    compose = support.load_compose()
    config_text = (DEPLOY / "compose" / "payhooks.toml").read_text()
    named = set(re.findall(r"/run/secrets/([\w.-]+)", config_text))
    assert named, "the compose configuration reads no secret from a file"
    for name in PAYHOOKS_SERVICES:
        service = compose["services"][name]
        config_path = service["environment"]["PAYHOOKS_CONFIG"]
        mounted = {c["target"]: compose["configs"][c["source"]]["file"] for c in service["configs"]}
        assert (DEPLOY / mounted[config_path]).resolve() == DEPLOY / "compose" / "payhooks.toml"
        assert named <= set(service["secrets"]), f"{name} lacks {named - set(service['secrets'])}"
    for secret in compose["secrets"].values():
        assert (DEPLOY / secret["file"]).is_file()


def test_topics_service_applies_the_topics_file_the_image_contains() -> None:
    compose = support.load_compose()
    topics = compose["services"]["topics"]
    path = support.option(_command(topics), "--file")
    assert support.image_copies()[path] == "deploy/topics.yaml"
    assert topics["restart"] == "no"
    for name in ("receiver", "worker"):
        assert compose["services"][name]["depends_on"]["topics"] == {
            "condition": "service_completed_successfully"}


def test_receiver_healthcheck_asks_readyz_on_the_port_it_serves() -> None:
    receiver = support.load_compose()["services"]["receiver"]
    port = support.option(_command(receiver), "--port")
    assert f"{port}:{port}" in receiver["ports"]
    code = receiver["healthcheck"]["test"][3]
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", code)
    assert url, code
    assert url.group(1) == port
    assert url.group(2) == "/readyz"
    assert "/readyz" in support.receiver_routes()


def test_worker_healthcheck_passes_exactly_when_the_worker_reports_ready() -> None:
    worker = support.load_compose()["services"]["worker"]
    assert support.option(_command(worker), "--metrics-port") == str(support.WORKER_METRICS_PORT)
    assert support.option(_command(worker), "--metrics-host") == ALL_INTERFACES
    check = worker["healthcheck"]["test"]
    assert check[0] == "CMD"
    result = support.run_worker_probe(check[1:])
    assert result.ready_exit == 0
    assert result.not_ready_exit != 0


def test_stop_grace_periods_cover_the_shutdown_sequences(tmp_path: Path) -> None:
    compose = support.load_compose()
    settings = load_settings(_compose_settings_file(tmp_path, compose), environ={})
    receiver, worker = compose["services"]["receiver"], compose["services"]["worker"]
    assert _duration_seconds(receiver["stop_grace_period"]) >= support.receiver_shutdown_seconds(
        settings)
    assert _duration_seconds(worker["stop_grace_period"]) >= support.worker_shutdown_seconds(
        settings)


def test_worker_replicas_do_not_exceed_the_raw_partitions() -> None:
    worker = support.load_compose()["services"]["worker"]
    specs = {s.role: s for s in load_specs(load_settings(environ={}), DEFAULT_TOPICS_FILE)}
    assert 1 <= worker["deploy"]["replicas"] <= specs["raw"].partitions


# --- Prometheus and Grafana -----------------------------------------------------------------------


def test_prometheus_scrapes_the_receiver_and_workers_where_they_serve_metrics() -> None:
    compose = support.load_compose()
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    receiver_port = support.option(_command(compose["services"]["receiver"]), "--port")
    assert jobs["payhooks-receiver"]["static_configs"][0]["targets"] == [
        f"receiver:{receiver_port}"]
    assert jobs["payhooks-receiver"]["metrics_path"] == "/metrics"
    assert "/metrics" in support.receiver_routes()
    worker_sd = jobs["payhooks-worker"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"]
    worker_port = support.option(_command(compose["services"]["worker"]), "--metrics-port")
    assert worker_sd["port"] == int(worker_port)


def test_prometheus_loads_the_rule_files_from_the_mounted_rules_directory() -> None:
    compose = support.load_compose()
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounts = _bind_mounts(compose["services"]["prometheus"])
    flags = dict(arg.split("=", 1) for arg in _command(compose["services"]["prometheus"]))
    config_target = flags["--config.file"]
    assert mounts[config_target] == DEPLOY / "prometheus" / "prometheus.yml"
    rules_target, rules_dir = next((t, p) for t, p in mounts.items() if t.endswith("/rules"))
    assert rules_dir == DEPLOY / "prometheus" / "rules"
    assert config["rule_files"]
    for pattern in config["rule_files"]:
        assert PurePosixPath(pattern).parent == PurePosixPath(rules_target), pattern
    # whatever rule files exist in the repository are picked up by the globs
    for path in rules_dir.glob("*") if rules_dir.is_dir() else ():
        if path.suffix in {".yml", ".yaml"}:
            assert any(fnmatch.fnmatch(f"{rules_target}/{path.name}", p)
                       for p in config["rule_files"]), path


def test_grafana_provisions_the_datasource_and_the_dashboards_directory() -> None:
    compose = support.load_compose()
    grafana, prometheus = compose["services"]["grafana"], compose["services"]["prometheus"]
    mounts = _bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    (source,) = datasources
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in prometheus["ports"]
    providers = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/payhooks.yml").read_text())["providers"]
    (provider,) = providers
    assert mounts[provider["options"]["path"]] == DEPLOY / "grafana" / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    home_path = Path(home)
    assert mounts[str(home_path.parent)] / home_path.name == (
        DEPLOY / "grafana" / "dashboards" / "payhooks.json")
    json.loads((DEPLOY / "grafana" / "dashboards" / "payhooks.json").read_text())


# --- the Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_builds_in_two_stages_and_runs_payhooks_as_a_numeric_non_root_user() -> None:
    instructions = support.dockerfile()
    froms = [ins.value for ins in instructions if ins.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: build and runtime"
    assert len({value.split()[0] for value in froms}) == 1, "one pinned base for every stage"
    final = support.final_stage(instructions)
    users = [ins.value for ins in final if ins.keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "numeric uid, so runAsNonRoot can check it"
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0
    entrypoint = next(ins.value for ins in final if ins.keyword == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["payhooks"]
    scripts = tomllib.loads((support.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "payhooks" in scripts
    support.check_cli_args(json.loads(next(ins.value for ins in final if ins.keyword == "CMD")))
    exposed = {port for ins in final if ins.keyword == "EXPOSE" for port in ins.value.split()}
    assert exposed == {"8080", str(support.WORKER_METRICS_PORT)}


def test_dockerfile_copies_the_wheel_packages_and_nothing_the_context_excludes() -> None:
    ignored = [line.strip() for line in (support.ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    sources = []
    for ins in support.dockerfile():
        if ins.keyword == "COPY" and not ins.value.startswith("--from"):
            sources += ins.value.split()[:-1]
    for source in sources:
        assert (support.ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) or source.startswith(f"{pattern}/")
                       for pattern in ignored), f"{source} is excluded by .dockerignore"
    packages = tomllib.loads((support.ROOT / "pyproject.toml").read_text())[
        "tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= {source.rstrip("/") for source in sources}
    for needed in ("pyproject.toml", "constraints.txt", "README.md"):
        assert needed in sources


@pytest.mark.parametrize("secret_path", ["deploy/compose/secrets", "deploy/k8s"])
def test_dockerfile_bakes_in_no_secret(secret_path: str) -> None:
    ignored = (support.ROOT / ".dockerignore").read_text().splitlines()
    assert secret_path in ignored
    for ins in support.dockerfile():
        assert not (ins.keyword in {"ENV", "ARG"} and re.search(
            r"(SECRET|PASSWORD|TOKEN|_KEY)\w*=", ins.value, re.IGNORECASE)), ins


# --- topics and the local configuration -----------------------------------------------------------


def test_topics_file_declares_every_topic_role_and_compacts_state() -> None:
    specs = {s.role: s for s in load_specs(load_settings(environ={}), DEFAULT_TOPICS_FILE)}
    assert set(specs) == set(TopicSettings().by_role())
    assert specs["state"].configs["cleanup.policy"] == "compact"
    assert all(s.configs.get("min.insync.replicas") == "2" for s in specs.values())
    assert all(s.replication_factor == 3 for s in specs.values())


def test_local_configuration_loads_and_serves_stripe() -> None:
    settings = load_settings(DEPLOY / "local" / "payhooks.toml", environ={})
    assert settings.endpoints["stripe"].provider == "stripe"
    assert settings.kafka.bootstrap_servers == "localhost:9092"
