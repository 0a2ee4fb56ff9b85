"""JSON schemas of the operators' custom resources, from their published CRDs shipped in deploy/crds/ (Strimzi
1.2.0, the MongoDB Community Operator 0.13.0). A CRD's `openAPIV3Schema` is made strict as `kubectl apply
--validate=strict` is: an object with declared properties takes no other field (unless the CRD keeps unknown
fields), `x-kubernetes-int-or-string` takes an integer or a string, `nullable` allows null."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("x-kubernetes-int-or-string"):
        out = {k: v for k, v in out.items() if k not in ("type", "anyOf")} | {"type": ["integer", "string"]}
    if "properties" in schema:
        out["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = strict(schema[key])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in out:
            out[key] = [strict(sub) for sub in schema[key]]
    if schema.get("nullable") and "type" in out:
        kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*kinds, "null"]
    return out


def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the strict schema of that served version; metadata is Kubernetes' own."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served"):
                    continue
                schema = strict(version["schema"]["openAPIV3Schema"])
                properties = schema.setdefault("properties", {})
                properties["apiVersion"] = {"const": f"{group}/{version['name']}"}
                properties["kind"] = {"const": kind}
                properties["metadata"] = {"type": "object"}
                schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
                found[(f"{group}/{version['name']}", kind)] = schema
    return found
