"""The Helm chart's security posture, for `make audit`.

Renders the umbrella chart (charts/accord, with its service subcharts) offline with Helm itself
(helm-python-sdk, as tests/deploy/test_charts.py does) for a few value sets and checks every
workload it renders (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod):

- the pod runs as non-root (``runAsNonRoot: true``, no ``runAsUser: 0``), shares no host
  namespace, and mounts no service-account token unless it asks for one explicitly;
- every container (init containers too) has a read-only root filesystem, no privilege
  escalation, is not privileged and drops ALL capabilities;
- with the services' ``networkPolicy.enabled`` (the "production" value set, which also uses an
  external database and Redis as docs/operations.md recommends), every workload is selected
  by a NetworkPolicy.

    python scripts/check_chart_security.py [--chart charts/accord]

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "accord"
SERVICES = ("sync", "presence", "edge")
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}

Manifest = dict[str, Any]


@dataclass(frozen=True)
class ValueSet:
    name: str
    values: dict[str, Any]
    network_policy: bool  # every workload must be selected by a NetworkPolicy


VALUE_SETS = (
    ValueSet("defaults", {}, network_policy=False),
    ValueSet(
        "production",
        {
            "postgresql": {"enabled": False},
            "redis": {"enabled": False},
            "secrets": {
                "DATABASE_URL": "postgresql://db.example:5432/accord",
                "REDIS_URL": "redis://redis.example:6379/0",
            },
            **{service: {"networkPolicy": {"enabled": True}} for service in SERVICES},
        },
        network_policy=True,
    ),
)


def render(chart: Path, values: dict[str, Any], release: str = "rel") -> list[Manifest]:
    """Every Kubernetes object ``chart`` renders for ``values`` (offline, no cluster)."""
    import helm_python as helm

    helm.disable_logging()
    with _quiet_stderr(), helm.Chart.load(chart) as loaded:
        rendered = loaded.render(values, name=release, namespace="accord", is_install=True)
    objects: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith("NOTES.txt"):
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Helm's Go side logs INFO lines (symlinked subcharts) to fd 2: keep them off the report."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def pod_template(workload: Manifest) -> Manifest:
    """The pod ({metadata, spec}) a workload runs."""
    if workload["kind"] == "Pod":
        return workload
    spec = workload.get("spec") or {}
    if workload["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template: Manifest = spec.get("template") or {}
    return template


def containers(pod: Manifest) -> Iterator[Manifest]:
    spec = pod.get("spec") or {}
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or []


def pod_problems(pod: Manifest) -> Iterator[str]:
    spec = pod.get("spec") or {}
    context = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield f"{field}: true"
    if spec.get("automountServiceAccountToken") is not False:
        yield "automountServiceAccountToken is not false"
    if context.get("runAsUser") == 0:
        yield "pod runAsUser: 0 (root)"
    for box in containers(pod):
        name = box.get("name", "?")
        security = box.get("securityContext") or {}
        non_root = security.get("runAsNonRoot", context.get("runAsNonRoot"))
        if non_root is not True:
            yield f"container {name}: runAsNonRoot is not true"
        if security.get("runAsUser") == 0:
            yield f"container {name}: runAsUser: 0 (root)"
        if security.get("readOnlyRootFilesystem") is not True:
            yield f"container {name}: readOnlyRootFilesystem is not true"
        if security.get("allowPrivilegeEscalation") is not False:
            yield f"container {name}: allowPrivilegeEscalation is not false"
        if security.get("privileged"):
            yield f"container {name}: privileged"
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            yield f"container {name}: capabilities do not drop ALL"


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def check(objects: list[Manifest], network_policy: bool) -> list[str]:
    """Every problem of the rendered ``objects``, as "Kind/name: problem"."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    problems: list[str] = []
    if not workloads:
        problems.append("the chart renders no workload")
    for workload in workloads:
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_template(workload)
        problems.extend(f"{where}: {problem}" for problem in pod_problems(pod))
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if network_policy and not any(
            selects(p["spec"].get("podSelector") or {}, labels) for p in policies
        ):
            problems.append(f"{where}: selected by no NetworkPolicy")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chart", type=Path, default=CHART, help="the umbrella chart")
    args = parser.parse_args(argv)
    failed = 0
    for value_set in VALUE_SETS:
        try:
            objects = render(args.chart, value_set.values)
        except Exception as error:  # Helm's errors: the chart does not render at all
            print(f"chart ({value_set.name}): does not render: {error}")
            failed += 1
            continue
        problems = check(objects, value_set.network_policy)
        for problem in problems:
            print(f"chart ({value_set.name}): {problem}")
        failed += len(problems)
        count = sum(o["kind"] in WORKLOADS for o in objects)
        if not problems:
            print(f"chart ({value_set.name}): ok: {count} workloads")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
