"""deploy/k8s: valid Kubernetes objects that reference only what exists (no cluster here).

Objects are validated against the Kubernetes API models of the `kubernetes` client (unknown or
misspelt fields, wrong types and missing required fields fail); references (selectors, targets,
ports, probes, volumes, secret files, images) are checked against each other, the compose file,
the Dockerfile and the code.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import pydantic
import pytest
import yaml

from payhooks.config import load_settings
from payhooks.topics import DEFAULT_TOPICS_FILE, load_specs
from tests.unit import deploy_support as support

K8S = support.DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())
PAYHOOKS_IMAGE = "payhooks"


@dataclass
class Build:
    """A kustomization read the way kustomize reads it, for the parts used here."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    generated: dict[tuple[str, str], dict[str, Path]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    patches: list[dict[str, Any]] = field(default_factory=list)


def read_kustomization(directory: Path) -> Build:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    build = Build()
    for resource in kustomization.get("resources", []):
        path = directory / resource
        assert path.exists(), f"{directory.name}: resource {resource} does not exist"
        if path.is_dir():
            base = read_kustomization(path)
            build.objects += base.objects
            build.generated |= base.generated
            build.images |= base.images
        else:
            build.objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in kustomization.get(key, []):
            files = {}
            for entry in generator["files"]:
                name, _, source = entry.rpartition("=") if "=" in entry else (
                    Path(entry).name, "", entry)
                assert (directory / source).is_file(), f"{generator['name']}: {source} missing"
                files[name] = directory / source
            build.generated[(kind, generator["name"])] = files
    for image in kustomization.get("images", []):
        build.images[image["name"]] = f"{image['newName']}:{image['newTag']}"
    for patch in kustomization.get("patches", []):
        path = directory / patch["path"]
        assert path.is_file(), f"{directory.name}: patch {patch['path']} does not exist"
        build.patches.append(yaml.safe_load(path.read_text()))
    return build


def find(build: Build, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in build.objects
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["spec"]["template"]["spec"]["containers"])


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def deployment(build: Build, component: str) -> dict[str, Any]:
    (found,) = [d for d in find(build, "Deployment")
                if d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return found


def workloads(build: Build) -> list[dict[str, Any]]:
    return find(build, "Deployment") + find(build, "Job")


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def model_for(obj: dict[str, Any]) -> type[Any]:
    version = obj["apiVersion"].rpartition("/")[2]
    model = getattr(kubernetes.client, f"{version.capitalize()}{obj['kind']}", None)
    assert model is not None, f"no Kubernetes model for {obj['apiVersion']} {obj['kind']}"
    return model  # type: ignore[no-any-return]


BUILDS = {"base": read_kustomization(BASE)} | {
    f"overlays/{p.name}": read_kustomization(p) for p in OVERLAYS}
BASE_BUILD = BUILDS["base"]


def toml_text() -> str:
    (files,) = [f for (kind, _), f in BASE_BUILD.generated.items() if kind == "ConfigMap"]
    return files["payhooks.toml"].read_text()


# --- every object is a valid Kubernetes object ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_object_validates_against_the_kubernetes_api_models(name: str) -> None:
    build = BUILDS[name]
    assert build.objects
    for obj in build.objects:
        try:
            model_for(obj).model_validate(obj)
        except pydantic.ValidationError as exc:
            pytest.fail(f"{name}: {obj['kind']} {obj['metadata']['name']}: {exc}")


def test_the_model_check_refuses_a_misspelt_field() -> None:
    obj = copy.deepcopy(deployment(BASE_BUILD, "receiver"))
    containers(obj)[0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(pydantic.ValidationError, match="paht"):
        model_for(obj).model_validate(obj)


@pytest.mark.parametrize("name", sorted(n for n in BUILDS if n != "base"))
def test_overlay_patches_target_objects_and_containers_of_the_base(name: str) -> None:
    build = BUILDS[name]
    assert build.patches
    for patch in build.patches:
        (target,) = find(build, patch["kind"], patch["metadata"]["name"])
        assert target["apiVersion"] == patch["apiVersion"]
        patched = {c["name"] for c in patch.get("spec", {}).get("template", {}).get(
            "spec", {}).get("containers", [])}
        if patched:
            assert patched <= {c["name"] for c in containers(target)}


# --- references between the objects ---------------------------------------------------------------


def test_deployments_select_their_own_pods() -> None:
    for obj in find(BASE_BUILD, "Deployment"):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert matches(obj["spec"]["selector"]["matchLabels"], labels)
        others = [d for d in find(BASE_BUILD, "Deployment") if d is not obj]
        assert not any(matches(obj["spec"]["selector"]["matchLabels"],
                               d["spec"]["template"]["metadata"]["labels"]) for d in others)


def test_every_service_selects_a_deployment_and_targets_a_port_its_container_exposes() -> None:
    services = find(BASE_BUILD, "Service")
    assert services
    for service in services:
        selected = [d for d in find(BASE_BUILD, "Deployment")
                    if matches(service["spec"]["selector"],
                               d["spec"]["template"]["metadata"]["labels"])]
        assert len(selected) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in containers(selected[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_hpa_and_pdbs_target_existing_deployments() -> None:
    (hpa,) = find(BASE_BUILD, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert find(BASE_BUILD, ref["kind"], ref["name"])
    assert hpa["spec"]["minReplicas"] >= 2, "one receiver is no redundancy"
    for pdb in find(BASE_BUILD, "PodDisruptionBudget"):
        selected = [d for d in find(BASE_BUILD, "Deployment")
                    if matches(pdb["spec"]["selector"]["matchLabels"],
                               d["spec"]["template"]["metadata"]["labels"])]
        assert len(selected) == 1, pdb["metadata"]["name"]
        assert pdb["spec"].get("minAvailable", 0) < selected[0]["spec"]["replicas"]


def test_pods_use_the_service_account_and_only_generated_configmaps_and_secrets() -> None:
    accounts = {o["metadata"]["name"] for o in find(BASE_BUILD, "ServiceAccount")}
    for obj in workloads(BASE_BUILD):
        spec = pod_spec(obj)
        assert spec["serviceAccountName"] in accounts
        for volume in spec["volumes"]:
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in BASE_BUILD.generated
            if "secret" in volume:
                assert ("Secret", volume["secret"]["secretName"]) in BASE_BUILD.generated
        volume_names = {v["name"] for v in spec["volumes"]}
        for container in containers(obj):
            for mount in container["volumeMounts"]:
                assert mount["name"] in volume_names


def test_every_container_mounts_the_configuration_and_every_secret_file_it_names() -> None:
    named = re.findall(r'^\s*\w+_file\s*=\s*"([^"]+)"', toml_text(), re.MULTILINE)
    assert named, "the configuration reads no secret from a file"
    for obj in workloads(BASE_BUILD):
        volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
        for container in containers(obj):
            env = {e["name"]: e["value"] for e in container["env"]}
            provided: dict[str, tuple[str, str]] = {}
            for mount in container["volumeMounts"]:
                volume = volumes[mount["name"]]
                for kind, key, ref in (("ConfigMap", "configMap", "name"),
                                       ("Secret", "secret", "secretName")):
                    if key in volume:
                        for file in BASE_BUILD.generated[(kind, volume[key][ref])]:
                            provided[f"{mount['mountPath']}/{file}"] = (kind, file)
            assert provided[env["PAYHOOKS_CONFIG"]] == ("ConfigMap", "payhooks.toml")
            for path in named:
                assert provided.get(path, ("", ""))[0] == "Secret", (
                    f"{obj['metadata']['name']}: {path} is not a mounted secret file")


def test_the_configuration_loads_with_the_example_secret_files(tmp_path: Path) -> None:
    text = toml_text()
    (secret_files,) = [f for (kind, _), f in BASE_BUILD.generated.items() if kind == "Secret"]
    for key, source in secret_files.items():
        text = re.sub(rf'"/run/secrets/payhooks/{re.escape(key)}"', f'"{source}"', text)
    path = tmp_path / "payhooks.toml"
    path.write_text(text)
    settings = load_settings(path, environ={})
    assert settings.endpoints
    assert settings.redis.url.startswith("redis://")
    for endpoint in settings.endpoints.values():
        assert all("EXAMPLE" in s.value for s in endpoint.secrets), "only example secrets here"


# --- probes, ports and commands -------------------------------------------------------------------


def test_receiver_serves_its_probes_on_the_port_it_listens_on() -> None:
    (container,) = containers(deployment(BASE_BUILD, "receiver"))
    support.check_cli_args(container["args"])
    port = int(support.option(container["args"], "--port"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    routes = support.receiver_routes()
    probes = {kind: container[kind]["httpGet"]
              for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["path"] in routes
        assert ports[probe["port"]] == port
    annotations = deployment(BASE_BUILD, "receiver")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes
    assert int(annotations["prometheus.io/port"]) == port


def test_worker_probes_use_its_metrics_port_and_ready_means_consumer_ready() -> None:
    worker = deployment(BASE_BUILD, "worker")
    (container,) = containers(worker)
    support.check_cli_args(container["args"])
    port = int(support.option(container["args"], "--metrics-port"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for kind in ("startupProbe", "livenessProbe"):
        assert ports[container[kind]["tcpSocket"]["port"]] == port
    command = container["readinessProbe"]["exec"]["command"]
    compose_check = support.load_compose()["services"]["worker"]["healthcheck"]["test"][1:]
    assert command == compose_check, "one readiness check for compose and Kubernetes"
    result = support.run_worker_probe(command)
    assert result.ready_exit == 0
    assert result.not_ready_exit != 0
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port


def test_topics_job_applies_the_topics_file_the_image_contains() -> None:
    (job,) = find(BASE_BUILD, "Job")
    (container,) = containers(job)
    support.check_cli_args(container["args"])
    assert support.image_copies()[support.option(container["args"], "--file")] == (
        "deploy/topics.yaml")
    assert pod_spec(job)["restartPolicy"] == "Never"
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["onExitCodes"]["containerName"] == container["name"]


# --- sizing and shutdown --------------------------------------------------------------------------


def test_termination_grace_periods_cover_the_shutdown_sequences() -> None:
    settings = load_settings(environ={})
    text = toml_text()
    settings_file = tomllib.loads(text)
    publish = settings_file["ingest"]["publish_timeout_seconds"]
    assert publish == settings.ingest.publish_timeout_seconds
    receiver = deployment(BASE_BUILD, "receiver")
    (container,) = containers(receiver)
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod_spec(receiver)["terminationGracePeriodSeconds"] >= (
        pre_stop + support.receiver_shutdown_seconds(settings))
    worker = deployment(BASE_BUILD, "worker")
    assert pod_spec(worker)["terminationGracePeriodSeconds"] >= support.worker_shutdown_seconds(
        settings)


def test_worker_replicas_share_the_raw_partitions_evenly() -> None:
    specs = {s.role: s for s in load_specs(load_settings(environ={}), DEFAULT_TOPICS_FILE)}
    for build in BUILDS.values():
        replicas = deployment(build, "worker")["spec"]["replicas"]
        assert 1 <= replicas <= specs["raw"].partitions
        assert specs["raw"].partitions % replicas == 0


def test_containers_run_the_image_of_the_dockerfile_as_its_non_root_user() -> None:
    uid, _, gid = next(ins.value for ins in support.final_stage(support.dockerfile())
                       if ins.keyword == "USER").partition(":")
    compose_image = support.load_compose()["services"]["receiver"]["image"]
    assert BASE_BUILD.images[PAYHOOKS_IMAGE] == compose_image
    assert compose_image == f"payhooks:{support.project_version()}"
    for obj in workloads(BASE_BUILD):
        spec = pod_spec(obj)
        assert spec["automountServiceAccountToken"] is False
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True
        assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))
        for container in containers(obj):
            assert container["image"] == PAYHOOKS_IMAGE
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
