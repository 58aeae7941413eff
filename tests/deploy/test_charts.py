"""Helm charts: rendered by Helm itself (offline), linted, validated against Kubernetes' schemas."""

from __future__ import annotations

import asyncio
import base64
import datetime
import shutil
import ssl
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.deploy.deploy_support import CHARTS, KNOWN_ENV, REPO, Manifest, kinds, one, render
from tests.support.edges import start_edge
from tests.support.suite import Suite
from tests.support.wsclient import SECRET, make_token

SERVICE_CHARTS = ("accord-sync", "accord-presence", "accord-edge")
ALL_CHARTS = (*SERVICE_CHARTS, "accord")
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
# Kinds from operators' CRDs, which kubernetes-validate does not know: their apiVersion.
CUSTOM_KINDS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "ServersTransport": "traefik.io/v1alpha1",
}
# The spec fields of Traefik's ServersTransport CRD (traefik.io/v1alpha1, Traefik v3).
SERVERS_TRANSPORT_FIELDS = {
    "serverName",
    "insecureSkipVerify",
    "rootCAs",
    "rootCAsSecrets",
    "certificatesSecrets",
    "maxIdleConnsPerHost",
    "forwardingTimeouts",
    "disableHTTP2",
    "peerCertURI",
    "spiffe",
    "cipherSuites",
    "minVersion",
    "maxVersion",
}
DATABASE_URL = "postgresql://accord:pw@db.example:5432/accord"
REDIS_URL = "redis://:pw@redis.example:6379/0"

GRPC_SERVER = {
    "tls": {"secretName": "{{ .Release.Name }}-grpc-tls"},
    "serviceTokens": {"secretName": "accord-service-tokens"},
}
# Secrets the value sets name, which the operator (or cert-manager) provides.
PROVIDED_SECRETS = {
    "rel-grpc-tls",
    "edge-grpc-tls",
    "accord-service-tokens",
    "edge-service-token",
    "edge-prod",
}
EDGE_TLS = {"secretName": "{{ .Release.Name }}-edge-tls"}

# Realistic value sets for every chart: (chart, name, values).
VALUE_SETS: list[tuple[str, str, dict[str, Any]]] = [
    *[(chart, "defaults", {}) for chart in ALL_CHARTS],
    (
        "accord",
        "hpa-off",
        {
            c: {"autoscaling": {"enabled": False}, "replicaCount": 3}
            for c in ("sync", "presence", "edge")
        },
    ),
    (
        "accord",
        "external-redis",
        {"redis": {"enabled": False}, "secrets": {"REDIS_URL": REDIS_URL}},
    ),
    (
        "accord",
        "external-database",
        {"postgresql": {"enabled": False}, "secrets": {"DATABASE_URL": DATABASE_URL}},
    ),
    ("accord", "five-edges", {"edge": {"autoscaling": {"enabled": False}, "replicaCount": 5}}),
    (
        "accord",
        "grpc-secured",
        {
            "sync": {"grpc": GRPC_SERVER},
            "presence": {"grpc": GRPC_SERVER},
            "edge": {
                "grpc": {
                    "tls": {"secretName": "edge-grpc-tls"},
                    "serviceToken": {"secretName": "edge-service-token"},
                }
            },
        },
    ),
    (
        "accord",
        "production",
        {
            "global": {
                "imageRegistry": "registry.example/accord",
                "imageTag": "1.2.3",
                "existingSecret": "accord-prod",
            },
            "postgresql": {"enabled": False},
            "redis": {"enabled": False},
            "monitoring": {
                "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus"}}
            },
            **{
                c: {"serviceMonitor": {"enabled": True}, "networkPolicy": {"enabled": True}}
                for c in ("sync", "presence", "edge")
            },
            "edge": {
                "serviceMonitor": {"enabled": True},
                "networkPolicy": {"enabled": True},
                "jwtPublicKey": {"secretName": "accord-jwt"},
                "config": {"MAX_CONNECTIONS": 20000},
            },
        },
    ),
    (
        "accord-sync",
        "postgres",
        {"secrets": {"DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL}},
    ),
    (
        "accord-presence",
        "redis",
        {"secrets": {"REDIS_URL": REDIS_URL}, "networkPolicy": {"enabled": True}},
    ),
    (
        "accord-edge",
        "secured",
        {
            "secrets": {"JWT_SECRET": "0123456789abcdef0123456789abcdef"},
            "networkPolicy": {"enabled": True},
            "serviceMonitor": {"enabled": True},
            "syncAddress": "sync.accord:50051",
        },
    ),
    (
        "accord-edge",
        "ingress-nginx",
        {
            "config": {"ALLOW_ANONYMOUS": True},
            "image": {"registry": "ghcr.io/example"},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"},
                "hosts": [{"host": "sync.example.com"}],
                "tls": [{"secretName": "sync-tls", "hosts": ["sync.example.com"]}],
            },
        },
    ),
    (
        "accord",
        "edge-ingress-traefik",
        {"edge": {"ingress": {"enabled": True, "className": "traefik"}}},
    ),
    (
        "accord-edge",
        "tls",
        {
            "tls": EDGE_TLS,
            "secrets": {"JWT_SECRET": SECRET, "REDIS_URL": REDIS_URL},
            "serviceMonitor": {"enabled": True, "tlsConfig": {"serverName": "accord.example.com"}},
            "ingress": {"enabled": True, "className": "nginx"},
        },
    ),
    (
        "accord-edge",
        "tls-traefik",
        {
            "tls": EDGE_TLS,
            "secrets": {"JWT_SECRET": SECRET},
            "ingress": {"enabled": True, "className": "traefik"},
            "traefik": {"serversTransport": {"enabled": True}},
        },
    ),
    ("accord-edge", "existing-secret", {"existingSecret": "edge-prod"}),
    (
        "accord",
        "edge-own-tls",
        {"edge": {"tls": EDGE_TLS, "grpc": {"tls": {"secretName": "edge-grpc-tls"}}}},
    ),
]
IDS = [f"{chart}-{name}" for chart, name, _ in VALUE_SETS]
assert len(set(IDS)) == len(IDS), "every value set needs its own id: IDS.index picks the first"


def deployments(objects: list[Manifest]) -> dict[str, Manifest]:
    """Accord service Deployments by component."""
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in kinds(objects, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/part-of") == "accord"
        and "app.kubernetes.io/component" in d["metadata"]["labels"]
    }


def container(deployment: Manifest) -> Manifest:
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    return main


def env_of(main: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in main["env"]}


def configmap_env(objects: list[Manifest], main: Manifest) -> dict[str, str]:
    (source,) = main["envFrom"]
    return dict(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"] or {})


@pytest.fixture(scope="module", params=VALUE_SETS, ids=IDS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], list[Manifest]]:
    chart, _, values = request.param
    return chart, values, render(chart, values)


def test_every_manifest_is_valid_kubernetes(
    rendered: tuple[str, dict[str, Any], list[Manifest]],
) -> None:
    _, _, objects = rendered
    assert objects
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            assert obj["apiVersion"] == CUSTOM_KINDS[obj["kind"]]
            assert obj["metadata"]["name"] and obj["spec"]
            if obj["kind"] == "ServersTransport":
                assert set(obj["spec"]) <= SERVERS_TRANSPORT_FIELDS, obj["spec"]
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = f"{obj['kind']}/{obj['metadata']['name']} on {version}"
                pytest.fail(f"{where}: {error.message} at {list(error.path)}")


def test_names_are_unique(rendered: tuple[str, dict[str, Any], list[Manifest]]) -> None:
    _, _, objects = rendered
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))


def test_pods_are_non_root_read_only_and_stop_after_their_drain(
    rendered: tuple[str, dict[str, Any], list[Manifest]],
) -> None:
    _, _, objects = rendered
    found = deployments(objects)
    assert found
    for component, deployment in found.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False
        for box in (*pod.get("initContainers", []), *pod["containers"]):
            security = box["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, component
            assert security["allowPrivilegeEscalation"] is False, component
            assert security["capabilities"]["drop"] == ["ALL"], component
            assert box["resources"]["requests"] and box["resources"]["limits"], component
        main = container(deployment)
        assert main["name"] == component
        assert main["args"] == [component]
        pause = int(main["lifecycle"]["preStop"]["exec"]["command"][1])
        assert main["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
        drain = int(env_of(main)["DRAIN_TIMEOUT"]["value"]) if component == "edge" else 0
        assert pod["terminationGracePeriodSeconds"] > pause + drain


def test_probes_are_native_grpc_for_grpc_services_and_http_for_the_edge(
    rendered: tuple[str, dict[str, Any], list[Manifest]],
) -> None:
    _, _, objects = rendered
    for component, deployment in deployments(objects).items():
        main = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        if component == "edge":
            # The edge's own TLS makes its port speak only HTTPS, probes included.
            scheme = {"scheme": "HTTPS"} if "TLS_CERT_FILE" in env_of(main) else {}
            for probe, path in (
                ("startupProbe", "/health"),
                ("readinessProbe", "/ready"),
                ("livenessProbe", "/health"),
            ):
                assert main[probe]["httpGet"] == {"path": path, "port": "http", **scheme}
            assert ports == {"http": 8080}
        elif "GRPC_TLS_CERT_FILE" in env_of(main):
            # Kubernetes' gRPC probes cannot speak TLS: the image's health check can.
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert main[probe]["exec"]["command"] == ["accord-healthcheck", component]
                assert "grpc" not in main[probe] and main[probe]["timeoutSeconds"] >= 5
        else:
            assert main["readinessProbe"]["grpc"]["port"] == ports["grpc"]
            assert main["livenessProbe"]["grpc"]["port"] == ports["grpc"]
            assert set(ports) == {"grpc", "metrics"}


def test_environment_uses_only_the_documented_names(
    rendered: tuple[str, dict[str, Any], list[Manifest]],
) -> None:
    _, _, objects = rendered
    for component, deployment in deployments(objects).items():
        main = container(deployment)
        names = set(env_of(main)) | set(configmap_env(objects, main))
        assert names <= KNOWN_ENV, names - KNOWN_ENV
        assert {"LOG_LEVEL", "LOG_FORMAT"} <= names
        bind = {"edge": "WS_ADDR", "sync": "SYNC_ADDR", "presence": "PRESENCE_ADDR"}[component]
        assert env_of(main)[bind]["value"].startswith("0.0.0.0:")
        if component != "edge":
            assert env_of(main)["METRICS_ADDR"]["value"].startswith("0.0.0.0:")


def test_secret_references_resolve(rendered: tuple[str, dict[str, Any], list[Manifest]]) -> None:
    _, values, objects = rendered
    secrets = {s["metadata"]["name"]: s for s in kinds(objects, "Secret")}
    external = values.get("global", {}).get("existingSecret")
    for deployment in deployments(objects).values():
        pod = deployment["spec"]["template"]["spec"]
        for box in (*pod.get("initContainers", []), *pod["containers"]):
            for entry in box["env"]:
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                if ref["name"] == external or ref["name"] in PROVIDED_SECRETS:
                    continue
                assert ref["name"] in secrets, ref
                if not ref.get("optional"):
                    assert ref["key"] in secrets[ref["name"]]["data"], ref


def test_every_service_has_autoscaling_or_fixed_replicas_and_a_pdb(
    rendered: tuple[str, dict[str, Any], list[Manifest]],
) -> None:
    _, _, objects = rendered
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in kinds(objects, "HorizontalPodAutoscaler")
    }
    pdbs = {p["metadata"]["name"]: p for p in kinds(objects, "PodDisruptionBudget")}
    services = {s["metadata"]["name"]: s for s in kinds(objects, "Service")}
    for component, deployment in deployments(objects).items():
        name = deployment["metadata"]["name"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert services[name]["spec"]["selector"] == selector
        if name in hpas:
            assert "replicas" not in deployment["spec"]
            metrics = hpas[name]["spec"]["metrics"]
            resources = {m["resource"]["name"] for m in metrics if m["type"] == "Resource"}
            assert resources == {"cpu", "memory"}
            custom = {m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"}
            assert custom == ({"accord_edge_connections"} if component == "edge" else set())
        else:
            assert deployment["spec"]["replicas"] >= 1
        if deployment["spec"].get("replicas") != 1:
            assert pdbs[name]["spec"]["selector"]["matchLabels"] == selector


def test_lint_passes_strictly() -> None:
    for chart in ALL_CHARTS:
        report = helm.lint(CHARTS / chart, strict=True, with_subcharts=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems and not report["errors"], (chart, problems, report["errors"])


def test_every_chart_ships_a_values_schema() -> None:
    for chart in ALL_CHARTS:
        with helm.Chart.load(CHARTS / chart) as loaded:
            assert loaded.schema is not None, chart


# --- what each value set must produce ---------------------------------------------------


def test_umbrella_defaults_install_the_whole_suite() -> None:
    objects = render("accord")
    assert set(deployments(objects)) == {"sync", "presence", "edge"}
    one(objects, "StatefulSet", "rel-postgresql")
    one(objects, "Deployment", "rel-redis")
    secret = one(objects, "Secret", "rel-accord")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert len(data["JWT_SECRET"]) >= 32
    assert (
        data["DATABASE_URL"]
        == f"postgresql://accord:{data['POSTGRES_PASSWORD']}@rel-postgresql:5432/accord"
    )
    assert data["REDIS_URL"] == "redis://rel-redis:6379/0"
    edge = env_of(container(deployments(objects)["edge"]))
    services = {s["metadata"]["name"]: s for s in kinds(objects, "Service")}
    for variable in ("SYNC_ADDR", "PRESENCE_ADDR"):
        host, port = edge[variable]["value"].rsplit(":", 1)
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    # Migrations run before sync starts, against the same database.
    sync = deployments(objects)["sync"]["spec"]["template"]["spec"]
    (migrate,) = sync["initContainers"]
    assert migrate["args"] == ["migrate"]
    assert migrate["image"] == container(deployments(objects)["sync"])["image"]
    assert (
        env_of(migrate)["DATABASE_URL"]
        == env_of(container(deployments(objects)["sync"]))["DATABASE_URL"]
    )
    # Monitoring ships with the chart.
    alerts = one(objects, "ConfigMap", "rel-accord-alerts")
    assert "AccordEdgeConnectionsNearLimit" in alerts["data"]["alerts.yml"]
    dashboard = one(objects, "ConfigMap", "rel-accord-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_hpa_off_gives_fixed_replicas() -> None:
    objects = render("accord", dict(VALUE_SETS[IDS.index("accord-hpa-off")][2]))
    assert not kinds(objects, "HorizontalPodAutoscaler")
    assert {c: d["spec"]["replicas"] for c, d in deployments(objects).items()} == {
        "sync": 3,
        "presence": 3,
        "edge": 3,
    }
    assert len(kinds(objects, "PodDisruptionBudget")) == 3


def test_external_redis_replaces_the_bundled_one() -> None:
    objects = render("accord", dict(VALUE_SETS[IDS.index("accord-external-redis")][2]))
    assert not [o for o in objects if o["metadata"]["name"] == "rel-redis"]
    data = one(objects, "Secret", "rel-accord")["data"]
    assert base64.b64decode(data["REDIS_URL"]).decode() == REDIS_URL


def secret_value(objects: list[Manifest], ref: Manifest) -> str:
    return base64.b64decode(one(objects, "Secret", ref["name"])["data"][ref["key"]]).decode()


BAD_CA_NAME = {"caSecretName": "Edge CA"}  # pragma: allowlist secret (a name with a space)


@pytest.mark.parametrize(
    ("values", "url"),
    [
        ({}, "redis://rel-redis:6379/0"),
        (VALUE_SETS[IDS.index("accord-external-redis")][2], REDIS_URL),
    ],
    ids=["bundled", "external"],
)
def test_the_umbrella_gives_the_edge_the_redis_sync_uses(values: dict[str, Any], url: str) -> None:
    objects = render("accord", dict(values))
    found = deployments(objects)
    edge_ref = env_of(container(found["edge"]))["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    sync_ref = env_of(container(found["sync"]))["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert edge_ref["name"] == sync_ref["name"] == "rel-accord"
    assert edge_ref["key"] == sync_ref["key"] == "REDIS_URL"
    assert secret_value(objects, edge_ref) == url


def test_one_global_redis_prefix_reaches_every_service_and_a_service_s_own_wins() -> None:
    objects = render("accord", {"global": {"redisPrefix": "tenant-a"}})
    found = deployments(objects)
    assert {
        name: configmap_env(objects, container(found[name])).get("REDIS_PREFIX")
        for name in ("sync", "presence", "edge")
    } == dict.fromkeys(("sync", "presence", "edge"), "tenant-a")
    own = {"global": {"redisPrefix": "tenant-a"}, "edge": {"config": {"REDIS_PREFIX": "mine"}}}
    objects = render("accord", own)
    found = deployments(objects)
    assert configmap_env(objects, container(found["edge"]))["REDIS_PREFIX"] == "mine"
    assert configmap_env(objects, container(found["sync"]))["REDIS_PREFIX"] == "tenant-a"
    # Without it, no service is given one (each takes its default, `accord`).
    objects = render("accord")
    found = deployments(objects)
    for name in ("sync", "presence", "edge"):
        assert "REDIS_PREFIX" not in configmap_env(objects, container(found[name]))


def test_the_edge_chart_passes_redis_url_from_its_secret_or_the_existing_one() -> None:
    objects = render("accord-edge", {"secrets": {"REDIS_URL": REDIS_URL}})
    ref = env_of(container(deployments(objects)["edge"]))["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "rel-edge", "key": "REDIS_URL"}
    assert secret_value(objects, ref) == REDIS_URL

    objects = render("accord-edge", dict(VALUE_SETS[IDS.index("accord-edge-existing-secret")][2]))
    assert not kinds(objects, "Secret")
    ref = env_of(container(deployments(objects)["edge"]))["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "edge-prod", "key": "REDIS_URL", "optional": True}

    # Without either, the edge keeps revocations in its own memory (a single edge).
    assert "REDIS_URL" not in env_of(container(deployments(render("accord-edge"))["edge"]))


def test_an_extra_env_redis_url_wins_without_a_second_entry() -> None:
    mine = {"name": "REDIS_URL", "value": "redis://mine.example:6379/2"}
    objects = render("accord", {"edge": {"extraEnv": [mine]}})
    entries = [
        e for e in container(deployments(objects)["edge"])["env"] if e["name"] == "REDIS_URL"
    ]
    assert entries == [mine]


def test_the_edge_tls_secret_is_mounted_and_named_in_its_environment() -> None:
    objects = render("accord", dict(VALUE_SETS[IDS.index("accord-edge-own-tls")][2]))
    deployment = deployments(objects)["edge"]
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    env = env_of(main)
    assert env["TLS_CERT_FILE"] == {"name": "TLS_CERT_FILE", "value": "/etc/accord/tls/tls.crt"}
    assert env["TLS_KEY_FILE"] == {"name": "TLS_KEY_FILE", "value": "/etc/accord/tls/tls.key"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    # The whole Secret as a directory (no subPath), so a renewal reaches the running pod.
    assert volumes["tls"] == {"name": "tls", "secret": {"secretName": "rel-edge-tls"}}
    assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/accord/tls", "readOnly": True}
    # Apart from the gRPC client certificate, which keeps its own Secret and directory.
    assert volumes["grpc-tls"]["secret"]["secretName"] == "edge-grpc-tls"
    assert mounts["grpc-tls"]["mountPath"] == "/etc/accord/grpc-tls"
    assert env["GRPC_TLS_CERT_FILE"]["value"] == "/etc/accord/grpc-tls/tls.crt"
    # Only the edge serves TLS itself: sync's and presence's probes stay gRPC.
    for component in ("sync", "presence"):
        other = container(deployments(objects)[component])
        assert "TLS_CERT_FILE" not in env_of(other)
        assert "grpc" in other["readinessProbe"]

    plain = container(deployments(render("accord"))["edge"])
    assert not {"TLS_CERT_FILE", "TLS_KEY_FILE"} & set(env_of(plain))
    assert "tls" not in {m["name"] for m in plain["volumeMounts"]}
    assert "scheme" not in plain["readinessProbe"]["httpGet"]


def test_a_tls_edge_is_reached_over_https_by_its_service_monitor_and_ingress() -> None:
    objects = render("accord-edge", dict(VALUE_SETS[IDS.index("accord-edge-tls")][2]))
    (endpoint,) = one(objects, "ServiceMonitor", "rel-edge")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"serverName": "accord.example.com"}
    (port,) = one(objects, "Service", "rel-edge")["spec"]["ports"]
    assert port["appProtocol"] == "https"
    annotations = one(objects, "Ingress", "rel-edge")["metadata"]["annotations"]
    assert annotations[f"{NGINX}backend-protocol"] == "HTTPS"

    plain = render("accord-edge", dict(VALUE_SETS[IDS.index("accord-edge-ingress-nginx")][2]))
    assert (
        f"{NGINX}backend-protocol"
        not in one(plain, "Ingress", "rel-edge")["metadata"]["annotations"]
    )
    (port,) = one(plain, "Service", "rel-edge")["spec"]["ports"]
    assert port["appProtocol"] == "http"
    monitored = render("accord-edge", {"serviceMonitor": {"enabled": True}})
    (endpoint,) = one(monitored, "ServiceMonitor", "rel-edge")["spec"]["endpoints"]
    assert "scheme" not in endpoint and "tlsConfig" not in endpoint


def test_five_edge_replicas() -> None:
    objects = render("accord", dict(VALUE_SETS[IDS.index("accord-five-edges")][2]))
    assert deployments(objects)["edge"]["spec"]["replicas"] == 5
    hpas = {h["metadata"]["name"] for h in kinds(objects, "HorizontalPodAutoscaler")}
    assert hpas == {"rel-sync", "rel-presence"}


def test_production_values_use_the_existing_secret_and_operator_resources() -> None:
    objects = render("accord", dict(VALUE_SETS[IDS.index("accord-production")][2]))
    assert not kinds(objects, "Secret")
    assert not kinds(objects, "StatefulSet")
    for component, deployment in deployments(objects).items():
        main = container(deployment)
        assert main["image"] == f"registry.example/accord/accord-{component}:1.2.3"
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in main["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs == {"accord-prod"}
    monitors = {m["metadata"]["name"]: m for m in kinds(objects, "ServiceMonitor")}
    assert set(monitors) == {"rel-sync", "rel-presence", "rel-edge"}
    assert monitors["rel-edge"]["spec"]["endpoints"][0]["port"] == "http"
    assert monitors["rel-sync"]["spec"]["endpoints"][0]["port"] == "metrics"
    rule = one(objects, "PrometheusRule", "rel-accord")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} >= {
        "AccordEdgeErrorRateHigh"
    }
    policies = {p["metadata"]["name"]: p for p in kinds(objects, "NetworkPolicy")}
    assert set(policies) == {"rel-sync", "rel-presence", "rel-edge", "rel-edge-test-welcome"}
    test_pod = policies["rel-edge-test-welcome"]["spec"]
    assert test_pod["policyTypes"] == ["Ingress"] and "ingress" not in test_pod
    grpc_rule = policies["rel-sync"]["spec"]["ingress"][0]
    assert grpc_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == (
        "accord-edge"
    )
    edge = container(deployments(objects)["edge"])
    assert env_of(edge)["JWT_PUBLIC_KEY_FILE"]["value"] == "/etc/accord/jwt/public.pem"
    assert configmap_env(objects, edge)["MAX_CONNECTIONS"] == "20000"


def test_network_policies_are_on_by_default_and_fence_each_door() -> None:
    objects = render("accord")
    policies = {p["metadata"]["name"]: p["spec"] for p in kinds(objects, "NetworkPolicy")}
    assert set(policies) == {
        "rel-sync",
        "rel-presence",
        "rel-edge",
        "rel-edge-test-welcome",
        "rel-postgresql",
        "rel-redis",
    }

    def callers(name: str, port: int) -> list[str]:
        (rule,) = [r for r in policies[name]["ingress"] if r["ports"][0]["port"] == port]
        assert all(
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "rel"
            for peer in rule["from"]
        )
        return sorted(
            p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"]
        )

    assert callers("rel-sync", 50051) == ["accord-edge"]
    assert callers("rel-presence", 50052) == ["accord-edge"]
    assert callers("rel-postgresql", 5432) == ["accord-sync"]
    assert callers("rel-redis", 6379) == ["accord-edge", "accord-presence", "accord-sync"]
    assert "from" not in policies["rel-edge"]["ingress"][0]  # clients connect from anywhere


def test_grpc_without_tls_secrets_allows_plaintext_explicitly() -> None:
    objects = render("accord")
    for component, deployment in deployments(objects).items():
        env = env_of(container(deployment))
        assert env["GRPC_ALLOW_PLAINTEXT"]["value"] == "true", component
        assert env["GRPC_ALLOW_UNAUTHENTICATED"]["value"] == "true", component
        assert not {"GRPC_TLS_CERT_FILE", "SERVICE_TOKEN", "SERVICE_TOKENS_FILE"} & set(env)


def test_grpc_tls_and_service_tokens_come_from_secrets() -> None:
    objects = render("accord", dict(VALUE_SETS[IDS.index("accord-grpc-secured")][2]))
    found = deployments(objects)
    for component, deployment in found.items():
        pod = deployment["spec"]["template"]["spec"]
        main = container(deployment)
        env = env_of(main)
        assert not {"GRPC_ALLOW_PLAINTEXT", "GRPC_ALLOW_UNAUTHENTICATED"} & set(env), component
        assert env["GRPC_TLS_CERT_FILE"]["value"] == "/etc/accord/grpc-tls/tls.crt"
        assert env["GRPC_TLS_KEY_FILE"]["value"] == "/etc/accord/grpc-tls/tls.key"
        assert env["GRPC_TLS_CA_FILE"]["value"] == "/etc/accord/grpc-tls/ca.crt"
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m for m in main["volumeMounts"]}
        # A whole-directory mount (no subPath), so renewed certificates reach the pod.
        assert mounts["grpc-tls"] == {
            "name": "grpc-tls",
            "mountPath": "/etc/accord/grpc-tls",
            "readOnly": True,
        }
        tls_secret = "edge-grpc-tls" if component == "edge" else "rel-grpc-tls"
        assert volumes["grpc-tls"]["secret"]["secretName"] == tls_secret
        if component == "edge":
            ref = env["SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "edge-service-token", "key": "SERVICE_TOKEN"}
        else:
            path = env["SERVICE_TOKENS_FILE"]["value"]
            assert path == "/etc/accord/service-tokens/service-tokens.json"
            assert "subPath" not in mounts["service-tokens"]
            tokens = volumes["service-tokens"]["secret"]
            assert tokens["secretName"] == "accord-service-tokens"
            assert tokens["items"] == [
                {"key": "service-tokens.json", "path": "service-tokens.json"}
            ]


def test_standalone_sync_without_a_database_is_a_single_sqlite_pod() -> None:
    objects = render("accord-sync")
    deployment = deployments(objects)["sync"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not kinds(objects, "HorizontalPodAutoscaler") and not kinds(
        objects, "PodDisruptionBudget"
    )
    assert env_of(container(deployment))["DATABASE_URL"]["value"].startswith("sqlite:///")
    assert "initContainers" not in deployment["spec"]["template"]["spec"]


def test_config_changes_roll_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        pod = deployments(render("accord-edge", values))["edge"]["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config": {"LOG_LEVEL": "debug"}})


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        ("accord-edge", {"config": {"LOG_LEVEL": "loud"}}, "LOG_LEVEL"),
        ("accord-edge", {"config": {"MAX_CONECTIONS": 5}}, "MAX_CONECTIONS"),
        ("accord-edge", {"secrets": {"JWT_SECRET": "short"}}, "JWT_SECRET"),
        ("accord-edge", {"secrets": {"JWT_SECRET": "x" * 31}}, "JWT_SECRET"),
        ("accord", {"secrets": {"JWT_SECRET": "x" * 31}}, "JWT_SECRET"),
        ("accord-edge", {"config": {"JWKS_URL": "http://idp.example.com/jwks"}}, "JWKS_URL"),
        ("accord-edge", {"config": {"JWT_ROOMS_CLAIM": "a..b"}}, "JWT_ROOMS_CLAIM"),
        (
            "accord-sync",
            {
                "securityContext": {
                    "readOnlyRootFilesystem": False,
                    "allowPrivilegeEscalation": False,
                }
            },
            "readOnlyRootFilesystem",
        ),
        ("accord-sync", {"secrets": {"DATABASE_URL": "mysql://x"}}, "DATABASE_URL"),
        ("accord-presence", {"replicaCount": 0}, "replicaCount"),
        ("accord", {"edge": {"autoscaling": {"minReplicas": 0}}}, "minReplicas"),
        ("accord", {"redis": {"enabled": False}}, "no Redis"),
        ("accord", {"postgresql": {"enabled": False}}, "no database"),
        ("accord-edge", {"terminationGracePeriodSeconds": 20}, "terminationGracePeriodSeconds"),
        ("accord-edge", {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "maxReplicas"),
        ("accord-edge", {"secrets": {"REDIS_URL": "http://redis:6379"}}, "/secrets/REDIS_URL"),
        ("accord", {"edge": {"secrets": {"REDIS_URL": "redis.internal"}}}, "/secrets/REDIS_URL"),
        ("accord-edge", {"config": {"REDIS_PREFIX": "two words"}}, "REDIS_PREFIX"),
        ("accord", {"global": {"redisPrefix": "two words"}}, "redisPrefix"),
        ("accord-edge", {"config": {"TLS_RELOAD_INTERVAL": 0}}, "TLS_RELOAD_INTERVAL"),
        # The Ingress's list form, given for the edge's own certificate.
        ("accord-edge", {"tls": [{"secretName": "edge-tls", "hosts": ["a"]}]}, "at '/tls'"),
        ("accord-edge", {"tls": {"enabled": True}}, "'enabled' not allowed"),
        ("accord-edge", {"tests": {"token": {"secretName": "t", "key": ""}}}, "key"),
        ("accord", {"edge": {"tls": {"secretName": "/etc/tls/tls.crt"}}}, "/tls/secretName"),
        (
            "accord-edge",
            {"tls": EDGE_TLS, "extraEnv": [{"name": "TLS_KEY_FILE", "value": "/x/tls.key"}]},
            "extraEnv sets TLS_KEY_FILE, which tls.secretName sets",
        ),
        (
            "accord-edge",
            {"traefik": {"serversTransport": {"enabled": True}}},
            "traefik.serversTransport.enabled needs tls.secretName",
        ),
        (
            "accord",
            {"edge": {"traefik": {"serversTransport": {"enabled": True}}}},
            "traefik.serversTransport.enabled needs tls.secretName",
        ),
        (
            "accord-edge",
            {"tls": EDGE_TLS, "traefik": {"serversTransport": {"enabled": "yes"}}},
            "/traefik/serversTransport/enabled",
        ),
        (
            "accord-edge",
            {"tls": EDGE_TLS, "traefik": {"serversTransport": BAD_CA_NAME}},
            "/traefik/serversTransport/caSecretName",
        ),
    ],
)
def test_bad_values_are_refused(chart: str, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError) as raised:
        render(chart, values)
    assert message in str(raised.value)


# --- Ingress, helm test, NOTES, READMEs -------------------------------------------------

NGINX = "nginx.ingress.kubernetes.io/"


def test_the_edge_ingress_is_off_by_default() -> None:
    assert not kinds(render("accord-edge"), "Ingress")
    assert not kinds(render("accord"), "Ingress")


def test_the_nginx_ingress_keeps_websockets_open_and_routes_to_the_edge() -> None:
    values = dict(VALUE_SETS[IDS.index("accord-edge-ingress-nginx")][2])
    objects = render("accord-edge", values)
    ingress = one(objects, "Ingress", "rel-edge")
    annotations = ingress["metadata"]["annotations"]
    assert annotations[f"{NGINX}proxy-read-timeout"] == "7200"  # the user's annotation wins
    assert annotations[f"{NGINX}proxy-send-timeout"] == "3600"
    assert annotations[f"{NGINX}proxy-http-version"] == "1.1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "sync-tls", "hosts": ["sync.example.com"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "sync.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    service = one(objects, "Service", "rel-edge")
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    port = path["backend"]["service"]["port"]["name"]
    assert port in {p["name"] for p in service["spec"]["ports"]}
    # image.registry prefixes the edge's image and the test Pod's.
    assert container(deployments(objects)["edge"])["image"] == "ghcr.io/example/accord-edge:0.1.0"
    (pod,) = kinds(objects, "Pod")
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/example/accord-edge:0.1.0"


def test_a_traefik_ingress_needs_no_annotations() -> None:
    values = dict(VALUE_SETS[IDS.index("accord-edge-ingress-traefik")][2])
    ingress = one(render("accord", values), "Ingress", "rel-edge")
    assert not [k for k in ingress["metadata"].get("annotations", {}) if k.startswith(NGINX)]
    assert ingress["spec"]["ingressClassName"] == "traefik"


TRAEFIK = "traefik.ingress.kubernetes.io/"


def test_a_traefik_servers_transport_trusts_the_tls_edge_and_its_service_names_it() -> None:
    values = dict(VALUE_SETS[IDS.index("accord-edge-tls-traefik")][2])
    objects = render("accord-edge", values)
    transport = one(objects, "ServersTransport", "rel-edge")
    assert transport["apiVersion"] == "traefik.io/v1alpha1"
    # By default: the Service's in-cluster name, checked against the edge's own Secret's ca.crt.
    assert transport["spec"] == {
        "serverName": "rel-edge.accord.svc",
        "rootCAs": [{"secret": "rel-edge-tls"}],
    }
    service = one(objects, "Service", "rel-edge")
    assert transport["metadata"]["labels"] == service["metadata"]["labels"]
    assert service["metadata"]["annotations"] == {
        f"{TRAEFIK}service.serversscheme": "https",
        f"{TRAEFIK}service.serverstransport": "accord-rel-edge@kubernetescrd",
    }
    (port,) = service["spec"]["ports"]
    assert port["appProtocol"] == "https"
    # The Ingress itself needs nothing more.
    assert "annotations" not in one(objects, "Ingress", "rel-edge")["metadata"]
    # Through the umbrella, with a CA Secret of its own and the clients' host name.
    transport_values = {
        "enabled": True,
        "caSecretName": "{{ .Release.Name }}-edge-ca",
        "serverName": "accord.example.com",
    }
    edge = {"tls": EDGE_TLS, "traefik": {"serversTransport": transport_values}}
    objects = render("accord", {"edge": edge}, release="prod")
    assert one(objects, "ServersTransport", "prod-edge")["spec"] == {
        "serverName": "accord.example.com",
        "rootCAs": [{"secret": "prod-edge-ca"}],  # pragma: allowlist secret
    }
    annotations = one(objects, "Service", "prod-edge")["metadata"]["annotations"]
    assert annotations[f"{TRAEFIK}service.serverstransport"] == "accord-prod-edge@kubernetescrd"
    # Only the edge's Service is annotated.
    for name in ("prod-sync", "prod-presence"):
        assert "annotations" not in one(objects, "Service", name)["metadata"]


def test_service_annotations_given_by_the_user_win_over_the_traefik_ones() -> None:
    values = dict(VALUE_SETS[IDS.index("accord-edge-tls-traefik")][2])
    mine = {
        f"{TRAEFIK}service.serverstransport": "accord-mine@kubernetescrd",
        "example.com/owner": "team-a",
    }
    values["service"] = {"annotations": mine}
    objects = render("accord-edge", values)
    assert one(objects, "Service", "rel-edge")["metadata"]["annotations"] == {
        f"{TRAEFIK}service.serversscheme": "https",
        **mine,
    }
    # The chart's transport is still rendered (the user's names another one).
    one(objects, "ServersTransport", "rel-edge")


def test_the_traefik_servers_transport_is_off_by_default() -> None:
    for chart, values in (
        ("accord-edge", {}),
        ("accord-edge", dict(VALUE_SETS[IDS.index("accord-edge-tls")][2])),
        ("accord", dict(VALUE_SETS[IDS.index("accord-edge-ingress-traefik")][2])),
        ("accord", dict(VALUE_SETS[IDS.index("accord-edge-own-tls")][2])),
    ):
        objects = render(chart, values)
        assert not kinds(objects, "ServersTransport"), (chart, values)
        for service in kinds(objects, "Service"):
            annotations = service["metadata"].get("annotations", {})
            assert not [k for k in annotations if k.startswith(TRAEFIK)], (chart, values)
    # service.annotations alone pass through as before.
    given = {"example.com/owner": "team-a"}
    service = one(render("accord-edge", {"service": {"annotations": given}}), "Service", "rel-edge")
    assert service["metadata"]["annotations"] == given


def helm_test_pod(values: dict[str, Any]) -> Manifest:
    (pod,) = kinds(render("accord-edge", values), "Pod")
    return pod


def test_the_helm_test_pod_is_a_hook_the_service_does_not_select() -> None:
    objects = render("accord")
    (pod,) = kinds(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    service = one(objects, "Service", "rel-edge")
    labels = pod["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    (box,) = pod["spec"]["containers"]
    assert box["command"] == ["python", "-c"]
    env = {e["name"]: e for e in box["env"]}
    assert env["ACCORD_TEST_URL"]["value"] == "ws://rel-edge:8080/ws"
    assert env["JWT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "rel-accord"
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert not kinds(render("accord-edge", {"tests": {"enabled": False}}), "Pod")


def test_the_helm_test_pod_of_a_tls_edge_dials_wss_with_only_the_ca() -> None:
    pod = helm_test_pod(dict(VALUE_SETS[IDS.index("accord-edge-tls")][2]))
    (box,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in box["env"]}
    assert env["ACCORD_TEST_URL"]["value"] == "wss://rel-edge:8080/ws"
    assert env["ACCORD_TEST_CA_FILE"]["value"] == "/etc/accord/tls/ca.crt"
    (mount,) = box["volumeMounts"]
    assert mount == {"name": "tls-ca", "mountPath": "/etc/accord/tls", "readOnly": True}
    (volume,) = pod["spec"]["volumes"]
    # No private key in the test Pod; a Secret without ca.crt (not every issuer writes one)
    # still lets it start.
    assert volume["secret"] == {
        "secretName": "rel-edge-tls",
        "optional": True,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    plain = helm_test_pod({})
    assert "volumes" not in plain["spec"]
    assert "ACCORD_TEST_CA_FILE" not in {e["name"] for e in plain["spec"]["containers"][0]["env"]}


def run_test_pod(
    pod: Manifest, url: str, secret: str | None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """The test Pod's own script, run here against a real edge (as the Pod would run it)."""
    (box,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value", "") for e in box["env"] if "value" in e}
    env.update(extra)
    env["ACCORD_TEST_URL"] = url
    if secret is not None:
        env["JWT_SECRET"] = secret
    command = [sys.executable, *box["command"][1:], *box["args"]]
    return subprocess.run(
        command, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60
    )


async def test_the_helm_test_pod_passes_on_welcome_and_fails_without(suite: Suite) -> None:
    pod = helm_test_pod({"secrets": {"JWT_SECRET": SECRET}})
    passed = await asyncio.to_thread(run_test_pod, pod, suite.ws_url, SECRET)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert '"type": "welcome"' in passed.stdout
    refused = await asyncio.to_thread(run_test_pod, pod, suite.ws_url, "another-secret-0123456789")
    assert refused.returncode == 1 and "welcome" in refused.stderr
    closed_port = suite.ws_url.rsplit(":", 1)[0] + ":9/ws"
    unreachable = await asyncio.to_thread(run_test_pod, pod, closed_port, SECRET)
    assert unreachable.returncode == 1 and "no welcome" in unreachable.stderr


async def test_the_helm_test_pod_can_carry_a_token_minted_elsewhere(suite: Suite) -> None:
    # A release that takes only its identity provider's tokens: tests.token names a Secret
    # with one, and the hello carries it (here the suite's own HS256 token stands in for it).
    pod = helm_test_pod({"tests": {"token": {"secretName": "{{ .Release.Name }}-test-token"}}})
    (box,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in box["env"]}
    assert env["ACCORD_TEST_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "rel-test-token", "key": "token"}
    }
    assert "JWT_SECRET" not in env  # the release has no JWT_SECRET to sign with
    token = make_token("helm-test")
    passed = await asyncio.to_thread(run_test_pod, pod, suite.ws_url, None, ACCORD_TEST_TOKEN=token)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # The token wins over a JWT_SECRET that would not do.
    wrong = "another-secret-0123456789abcdef!"
    won = await asyncio.to_thread(run_test_pod, pod, suite.ws_url, wrong, ACCORD_TEST_TOKEN=token)
    assert won.returncode == 0, won.stdout + won.stderr
    forged = make_token("helm-test", secret=wrong)
    refused = await asyncio.to_thread(
        run_test_pod, pod, suite.ws_url, None, ACCORD_TEST_TOKEN=forged
    )
    assert refused.returncode == 1 and "welcome" in refused.stderr


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` only, signed by its own key, as cert-manager's SelfSigned
    issuer writes one (its ca.crt is the certificate itself): (tls.crt, tls.key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_the_helm_test_pod_verifies_a_tls_edge_by_its_chain_not_its_name(
    suite: Suite, tmp_path: Path
) -> None:
    # Made for the clients' host name: the Pod dials another one (the Service; here 127.0.0.1).
    cert_file, key_file = self_signed(tmp_path, "accord.example.com")
    trust = ssl.create_default_context(cafile=str(cert_file))
    trust.check_hostname = False
    env = {"TLS_CERT_FILE": str(cert_file), "TLS_KEY_FILE": str(key_file)}
    pod = helm_test_pod(dict(VALUE_SETS[IDS.index("accord-edge-tls")][2]))
    async with AsyncExitStack() as stack:
        edge = await start_edge(stack, suite, env, trust)
        wss = f"wss://127.0.0.1:{edge.port}/ws"
        passed = await asyncio.to_thread(
            run_test_pod, pod, wss, SECRET, ACCORD_TEST_CA_FILE=str(cert_file)
        )
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert '"type": "welcome"' in passed.stdout
        # No ca.crt in the Secret (the optional item left out): the system's roots alone
        # do not know this certificate, and the test fails rather than trusting it.
        absent = str(tmp_path / "absent" / "ca.crt")
        untrusted = await asyncio.to_thread(
            run_test_pod, pod, wss, SECRET, ACCORD_TEST_CA_FILE=absent
        )
        assert untrusted.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
        # A plain ws:// URL to the TLS port gets no welcome either.
        plain = await asyncio.to_thread(
            run_test_pod, helm_test_pod({}), wss.replace("wss", "ws"), SECRET
        )
        assert plain.returncode == 1 and "no welcome" in plain.stderr


def test_notes_name_the_namespace() -> None:
    for chart in ALL_CHARTS:
        with helm.Chart.load(CHARTS / chart) as loaded:
            rendered = loaded.render({}, name="rel", namespace="team-a", is_install=True)
        notes = rendered[f"{chart}/templates/NOTES.txt"]
        assert "namespace team-a" in notes or "rel-sync.team-a" in notes, (chart, notes)
        if chart in ("accord", "accord-edge"):
            assert "helm test rel -n team-a" in notes and "kubectl -n team-a" in notes


def test_the_chart_readmes_are_up_to_date() -> None:
    script = [sys.executable, str(REPO / "scripts" / "chart_docs.py"), "--check"]
    result = subprocess.run(script, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for chart in ALL_CHARTS:
        readme = (CHARTS / chart / "README.md").read_text()
        assert "| `image.registry` |" in readme or "| `global.imageRegistry` |" in readme, chart


def test_a_stale_readme_is_caught_and_rewritten(tmp_path: Path) -> None:
    chart = tmp_path / "accord-presence"
    shutil.copytree(CHARTS / "accord-presence", chart, symlinks=True)
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("replicaCount: 2", "replicaCount: 7"))
    script = [sys.executable, str(REPO / "scripts" / "chart_docs.py")]
    stale = subprocess.run([*script, "--check", str(chart)], capture_output=True, text=True)
    assert stale.returncode == 1 and "accord-presence/README.md" in stale.stderr
    subprocess.run([*script, str(chart)], check=True)
    assert "| `replicaCount` | integer (≥ 1) | `7` |" in (chart / "README.md").read_text()
