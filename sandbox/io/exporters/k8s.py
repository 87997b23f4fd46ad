"""Export a profile as Kubernetes manifests: a ConfigMap, Deployment and Service per stub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.io.exporters._common import (
    IMAGE,
    PROBE_INTERVAL,
    PROFILE_DIR,
    Exported,
    ExportResult,
    begin_export,
    write_text,
)

MANIFESTS_FILE = "kubernetes.yaml"
# An init container waits for each dependency: its Service answers only once the pods behind
# it pass their readiness probe, so a connection means the dependency is ready
# (compose's service_healthy). Kubernetes has no depends_on of its own.
_WAIT = (
    "import socket, sys, time\n"
    "host, port = sys.argv[1], int(sys.argv[2])\n"
    "while True:\n"
    "    try:\n"
    "        socket.create_connection((host, port), timeout=2).close()\n"
    "        break\n"
    "    except OSError as exc:\n"
    "        print(f'waiting for {host}:{port}: {exc}', flush=True)\n"
    "        time.sleep(1)\n"
)


def export_k8s(profile_path: Path, out_dir: Path, *, strict: bool = False) -> ExportResult:
    """Write `kubernetes.yaml` (ConfigMap + Deployment + Service per stub) and a `Dockerfile`.

    Raises ProfileNotFound / ProfileError for a profile that does not load, StrictError
    (nothing written) when `strict` and anything does not carry over exactly.
    """
    profile, result, services = begin_export(profile_path, out_dir, strict=strict)
    docs = manifests(profile.name, services)
    header = (
        f"# Exported from the sandbox profile `{profile.name}`: one ConfigMap, Deployment and\n"
        "# Service per stub. Services are ClusterIP only; reach one from this machine with\n"
        "# kubectl port-forward --address 127.0.0.1 svc/NAME PORT\n"
    )
    text = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    write_text(out_dir / MANIFESTS_FILE, header + text, result)
    return result


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line text (a profile, a script) written as a `|` block."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def manifests(name: str, services: list[Exported]) -> list[dict[str, Any]]:
    """Every object, as data: for each stub a ConfigMap, a Deployment and a Service."""
    by_name = {s.name: s for s in services}
    docs: list[dict[str, Any]] = []
    for svc in services:
        docs.extend([_config_map(name, svc), _deployment(name, svc, by_name), _service(name, svc)])
    return docs


def _labels(profile: str, svc: Exported) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": svc.host,
        "app.kubernetes.io/part-of": profile,
        "app.kubernetes.io/managed-by": "sandbox-export",
        "sandbox.io/profile": profile,
        "sandbox.io/service": svc.host,
    }


def _selector(profile: str, svc: Exported) -> dict[str, str]:
    return {"app.kubernetes.io/name": svc.host, "app.kubernetes.io/part-of": profile}


def _file_key(rel: str) -> str:
    """A ConfigMap key for a file path (keys allow letters, digits, `-`, `_` and `.`)."""
    return "file-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in rel)


def _config_map(profile: str, svc: Exported) -> dict[str, Any]:
    data = {"profile.yaml": svc.profile_text}
    binary: dict[str, str] = {}
    for rel, content in svc.files.items():
        try:
            data[_file_key(rel)] = content.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            binary[_file_key(rel)] = base64.b64encode(content).decode()
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{svc.host}-profile", "labels": _labels(profile, svc)},
        "data": data,
    }
    if binary:
        doc["binaryData"] = binary
    return doc


def _deployment(profile: str, svc: Exported, by_name: dict[str, Exported]) -> dict[str, Any]:
    items = [{"key": "profile.yaml", "path": "profile.yaml"}]
    items += [{"key": _file_key(rel), "path": rel} for rel in sorted(svc.files)]
    container: dict[str, Any] = {
        "name": svc.host,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["up", f"{PROFILE_DIR}/profile.yaml", "--container-listen"],
        "ports": [{"name": "stub", "containerPort": svc.port, "protocol": "TCP"}],
        "readinessProbe": {
            "exec": {"command": svc.probe},
            "periodSeconds": int(PROBE_INTERVAL),
            "timeoutSeconds": 3,
            "failureThreshold": svc.retries,
        },
        "volumeMounts": [{"name": "profile", "mountPath": PROFILE_DIR, "readOnly": True}],
    }
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": [
            {"name": "profile", "configMap": {"name": f"{svc.host}-profile", "items": items}}
        ],
    }
    if svc.depends_on:
        pod["initContainers"] = [
            {
                "name": f"wait-for-{by_name[dep].host}"[:63],
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-c", _WAIT, by_name[dep].host, str(by_name[dep].port)],
            }
            for dep in svc.depends_on
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": svc.host, "labels": _labels(profile, svc)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _selector(profile, svc)},
            "template": {
                "metadata": {
                    "labels": _labels(profile, svc),
                    # A changed profile changes the hash, so the pods are replaced.
                    "annotations": {"sandbox.io/config-hash": svc.config_hash},
                },
                "spec": pod,
            },
        },
    }


def _service(profile: str, svc: Exported) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": svc.host,
            "labels": _labels(profile, svc),
            "annotations": {"sandbox.io/config-hash": svc.config_hash},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(profile, svc),
            "ports": [{"name": "stub", "port": svc.port, "targetPort": "stub", "protocol": "TCP"}],
        },
    }
