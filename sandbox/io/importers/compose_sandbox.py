"""Recognise a service that `sandbox export compose` wrote, and read back the stub it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SERVICE_LABEL = "io.sandbox.service"


def exported_stub(folder: Path, spec: dict[str, Any]) -> tuple[dict[str, Any], Path] | None:
    """The stub spec from the one-service profile an exported service mounts, and its file.

    None for any other service, or when that profile is missing or not what export writes.
    """
    labels = spec.get("labels")
    if not isinstance(labels, dict) or not isinstance(labels.get(SERVICE_LABEL), str):
        return None
    name = labels[SERVICE_LABEL]
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, str) or not volume.startswith("./"):
            continue
        path = folder / volume.split(":", 1)[0] / "profile.yaml"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        stub = data.get("services", {}).get(name) if isinstance(data, dict) else None
        if isinstance(stub, dict) and stub.get("kind") in ("http", "tcp"):
            return stub, path
    return None
