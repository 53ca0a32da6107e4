"""``generate --format kubernetes``: the generated output as Kubernetes objects.

It packages what the generators wrote for the files layout, so the two formats never disagree:

* each rule file ``alerts/<name>.yaml`` becomes one ``PrometheusRule``
  (``monitoring.coreos.com/v1``) whose ``spec.groups`` are that file's groups, labelled with
  the spec's ``kubernetes.rule_labels`` for prometheus-operator's ``ruleSelector``;
* each dashboard ``dashboards/<name>.json`` becomes one ``ConfigMap`` holding the JSON under
  ``<name>.json``, labelled for the Grafana sidecar (``kubernetes.dashboard_labels``, default
  ``grafana_dashboard: "1"``), with the folder annotation when ``kubernetes.dashboard_folder``
  is set;
* ``kubernetes/kustomization.yaml`` lists those objects (and sets the namespace when
  ``kubernetes.namespace`` is set);
* the Alertmanager configuration and the runbooks stay files (``alertmanager/``,
  ``runbooks/``); the promtool tests, which load rule files, belong to the files format.

The Alertmanager configuration is not an ``AlertmanagerConfig`` object: the operator adds a
``namespace`` matcher to every route and inhibit rule of one, and the generated alerts
aggregate over the service, so they carry no ``namespace`` label unless the Prometheus object
enforces one (docs/kubernetes.md).

Object names are the file names made DNS-1123 subdomains (lowercase, ``_`` and ``.`` as
``-``): ``chat-gateway-rules``, ``chat-gateway-slo-overview``. A name that cannot be made valid,
or a dashboard over the 1 MiB a ConfigMap holds, is a :class:`KubernetesError` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from . import conventions as c
from .alerts import dump_yaml
from .catalog.source import Source
from .spec import Spec
from .spec.model import dns1123_subdomain_problem

__all__ = [
    "CONFIGMAP_MAX_BYTES",
    "KUBERNETES_DIR",
    "KUSTOMIZATION",
    "KubernetesError",
    "object_name",
    "package",
]

#: The directory of the Kubernetes objects and their kustomization, in the output directory.
KUBERNETES_DIR = "kubernetes"
#: The kustomization listing every object, in :data:`KUBERNETES_DIR`.
KUSTOMIZATION = "kustomization.yaml"
#: Most bytes a ConfigMap's data may hold (keys and values), as the API server enforces.
CONFIGMAP_MAX_BYTES = 1024 * 1024
#: What a ConfigMap or PrometheusRule says it was made by.
_MANAGED_BY = {"app.kubernetes.io/managed-by": "steadystream"}
#: Top-level directories of the files layout that pass through unchanged.
_KEPT = (c.ALERTMANAGER_DIR, c.RUNBOOKS_DIR)
#: Top-level directories of the files layout that the Kubernetes format leaves out.
_DROPPED = (c.RULE_TESTS_DIR,)


class KubernetesError(ValueError):
    """The output cannot be packaged as Kubernetes objects (a name, a size)."""


def object_name(file_name: str) -> str:
    """The object name for the generated file ``file_name`` (its name without the last
    suffix, lowercase, ``_`` and ``.`` as ``-``); :class:`KubernetesError` if that is still not
    a DNS-1123 subdomain."""
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    name = stem.lower().replace("_", "-").replace(".", "-")
    problem = dns1123_subdomain_problem(name)
    if problem:
        raise KubernetesError(
            f"{file_name}: cannot name a Kubernetes object after it: {problem}; "
            "rename the service or the file"
        )
    return name


def _metadata(
    spec: Spec, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**_MANAGED_BY, "app.kubernetes.io/part-of": spec.service, **labels},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    if spec.kubernetes.namespace is not None:
        meta["namespace"] = spec.kubernetes.namespace
    return meta


def _prometheus_rule(spec: Spec, path: str, text: str) -> tuple[str, dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(text, Loader=loader)  # a safe loader (libyaml when present)
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise KubernetesError(f"{path}: not a Prometheus rule file (no 'groups' list)")
    name = object_name(path.rsplit("/", 1)[1])
    return name, {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(spec, name, spec.kubernetes.rule_labels, {}),
        "spec": {"groups": doc["groups"]},
    }


def _dashboard_config_map(spec: Spec, path: str, text: str) -> tuple[str, dict[str, Any]]:
    file_name = path.rsplit("/", 1)[1]
    name = object_name(file_name)
    size = len(file_name.encode("utf-8")) + len(text.encode("utf-8"))
    if size > CONFIGMAP_MAX_BYTES:
        try:
            title = json.loads(text).get("title") or file_name
        except (ValueError, AttributeError):
            title = file_name
        raise KubernetesError(
            f"{path}: dashboard {title!r} is {size} bytes, more than the {CONFIGMAP_MAX_BYTES} "
            f"bytes (1 MiB) a ConfigMap holds; split the spec's SLOs over several specs, or "
            "use the files format and Grafana's file provisioning"
        )
    k = spec.kubernetes
    annotations = {k.folder_annotation: k.dashboard_folder} if k.dashboard_folder else {}
    return name, {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, name, k.dashboard_labels, annotations),
        "data": {file_name: text},
    }


def package(spec: Spec, source: Source, files: Mapping[str, str]) -> dict[str, str]:
    """The Kubernetes format of ``files`` (what :func:`steadystream.generate.render_all`
    returns for the files format): ``{relative path: text}``, sorted by path.

    ``kubernetes/<name>.prometheusrule.yaml`` per rule file,
    ``kubernetes/<name>.configmap.yaml`` per dashboard, ``kubernetes/kustomization.yaml``,
    and the ``alertmanager/`` and ``runbooks/`` files as they are. Every file starts with the
    generated header. Pure; raises :class:`KubernetesError` on a name or size Kubernetes
    refuses, before returning anything.
    """
    header = c.generated_header(source.name, source.sha256)
    out: dict[str, str] = {}
    resources: list[str] = []
    for path, text in files.items():
        top = path.split("/", 1)[0]
        if top in _KEPT:
            out[path] = text
            continue
        if top in _DROPPED:
            continue
        if top == c.ALERTS_DIR:
            name, obj = _prometheus_rule(spec, path, text)
            kind = "prometheusrule"
        elif top == c.DASHBOARDS_DIR:
            name, obj = _dashboard_config_map(spec, path, text)
            kind = "configmap"
        else:
            raise KubernetesError(f"{path}: no Kubernetes packaging for files in {top}/")
        target = f"{name}.{kind}.yaml"
        rel = f"{KUBERNETES_DIR}/{target}"
        if rel in out:
            raise KubernetesError(f"{path}: its object {target} is also made from another file")
        out[rel] = dump_yaml(obj, header)
        resources.append(target)
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(resources),
    }
    if spec.kubernetes.namespace is not None:
        kustomization["namespace"] = spec.kubernetes.namespace
    out[f"{KUBERNETES_DIR}/{KUSTOMIZATION}"] = dump_yaml(kustomization, header)
    return dict(sorted(out.items()))
