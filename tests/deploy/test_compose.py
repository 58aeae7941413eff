"""docker-compose.yml: every service, port, dependency and health check of the one-machine suite."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import KNOWN_ENV, MONITORING, REPO

ACCORD = ("sync", "presence", "edge")
EXPECTED_SERVICES = {"postgres", "redis", "migrate", *ACCORD, "prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, with ${VAR:-default} taken at its default."""
    ports = {}
    for entry in service.get("ports", []):
        host, container = re.sub(r"\$\{[A-Z_]+:-(\d+)\}", r"\1", entry).rsplit(":", 1)
        ports[int(container)] = int(host)
    return ports


def default_env(value: object) -> str:
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def test_exactly_the_suite(services: dict[str, Any]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_only_edge_prometheus_and_grafana_are_published(services: dict[str, Any]) -> None:
    assert published(services["edge"]) == {8080: 8080}
    assert published(services["prometheus"]) == {9090: 9090}
    assert published(services["grafana"]) == {3000: 3000}
    for name in EXPECTED_SERVICES - {"edge", "prometheus", "grafana"}:
        assert "ports" not in services[name], name


def test_dependencies_wait_for_health(services: dict[str, Any]) -> None:
    assert dependencies(services["migrate"]) == {"postgres": "service_healthy"}
    assert dependencies(services["sync"]) == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert dependencies(services["presence"]) == {"redis": "service_healthy"}
    assert dependencies(services["edge"]) == {
        "sync": "service_healthy",
        "presence": "service_healthy",
    }
    assert dependencies(services["prometheus"]) == {name: "service_healthy" for name in ACCORD}
    assert dependencies(services["grafana"]) == {"prometheus": "service_healthy"}


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck", {})
        if name == "migrate":
            assert check == {"disable": True}
            continue
        assert check.get("test"), name
        if name in ACCORD:
            assert check["test"] == ["CMD", "accord-healthcheck", name]
    # Every service another one waits on for health can become healthy.
    for service in services.values():
        for dependency, condition in dependencies(service).items():
            if condition == "service_healthy":
                assert "test" in services[dependency]["healthcheck"], dependency


def test_accord_images_come_from_the_dockerfile_targets(services: dict[str, Any]) -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    for name, target in {
        "sync": "sync",
        "presence": "presence",
        "edge": "edge",
        "migrate": "sync",
    }.items():
        build = services[name]["build"]
        assert build == {"context": ".", "dockerfile": "docker/Dockerfile", "target": target}
        assert re.search(rf"^FROM \S+ AS {target}$", dockerfile, re.MULTILINE)
        assert default_env(services[name]["image"]) == f"accord-{target}:dev"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"


def test_accord_containers_are_locked_down(services: dict[str, Any]) -> None:
    for name in (*ACCORD, "migrate"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_environment_wires_the_services_together(services: dict[str, Any]) -> None:
    env = {
        name: {k: default_env(v) for k, v in services[name]["environment"].items()}
        for name in ACCORD
    }
    for name in ACCORD:
        assert set(env[name]) <= KNOWN_ENV, name
    assert env["edge"]["WS_ADDR"] == "0.0.0.0:8080"
    assert env["edge"]["SYNC_ADDR"] == "sync:50051"
    assert env["edge"]["PRESENCE_ADDR"] == "presence:50052"
    assert env["sync"]["SYNC_ADDR"] == "0.0.0.0:50051"
    assert env["sync"]["METRICS_ADDR"] == "0.0.0.0:9101"
    assert env["presence"]["PRESENCE_ADDR"] == "0.0.0.0:50052"
    assert env["presence"]["METRICS_ADDR"] == "0.0.0.0:9102"
    database = "postgresql://accord:accord@postgres:5432/accord"
    assert env["sync"]["DATABASE_URL"] == database
    assert default_env(services["migrate"]["environment"]["DATABASE_URL"]) == database
    postgres = services["postgres"]["environment"]
    assert (
        postgres["POSTGRES_USER"],
        default_env(postgres["POSTGRES_PASSWORD"]),
        postgres["POSTGRES_DB"],
    ) == ("accord", "accord", "accord")
    assert env["sync"]["REDIS_URL"] == env["presence"]["REDIS_URL"] == "redis://redis:6379/0"
    # gRPC is plaintext on the project's own network, and says so explicitly.
    for name in ACCORD:
        assert env[name]["GRPC_ALLOW_PLAINTEXT"] == "true", name
        assert env[name]["GRPC_ALLOW_UNAUTHENTICATED"] == "true", name


def test_edge_is_stopped_only_after_its_drain(services: dict[str, Any]) -> None:
    drain = int(default_env(services["edge"]["environment"]["DRAIN_TIMEOUT"]))
    grace = int(services["edge"]["stop_grace_period"].rstrip("s"))
    assert grace > drain


def test_prometheus_scrapes_all_three_services(services: dict[str, Any]) -> None:
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["accord-edge"] == ["edge:8080"]
    assert targets["accord-sync"] == ["sync:9101"]
    assert targets["accord-presence"] == ["presence:9102"]
    mounts = dict(
        v.rsplit(":", 1)[0].split(":", 1)
        for v in services["prometheus"]["volumes"]
        if v.startswith("./")
    )
    assert mounts["./monitoring/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert config["rule_files"] == [mounts["./monitoring/prometheus/alerts.yml"]]


def test_grafana_is_provisioned_with_the_datasource_and_dashboard(services: dict[str, Any]) -> None:
    volumes = [v for v in services["grafana"]["volumes"] if v.startswith("./")]
    mounts = {}
    for volume in volumes:
        source, target = volume.removesuffix(":ro").split(":")
        assert (REPO / source).is_dir(), source
        mounts[target] = REPO / source
    datasources = yaml.safe_load(
        (mounts["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert (source["type"], source["url"], source["uid"]) == (
        "prometheus",
        "http://prometheus:9090",
        "prometheus",
    )
    providers = yaml.safe_load(
        (mounts["/etc/grafana/provisioning/dashboards"] / "accord.yml").read_text()
    )
    (provider,) = providers["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "accord.json").is_file()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/accord.json"


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    used = {
        v.split(":")[0]
        for s in services.values()
        for v in s.get("volumes", [])
        if not v.startswith((".", "/"))
    }
    assert used == set(compose["volumes"])
