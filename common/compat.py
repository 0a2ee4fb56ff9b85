"""Backward compatibility of Avro schemas: can a reader with the new schema read data written with the old?

Follows the Avro specification's schema-resolution rules. Returns a list of problems (empty = compatible).
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return schema["type"]
    return schema if schema in PRIMITIVES else "named"


def _full_name(schema: dict[str, Any], namespace: str) -> str:
    name = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


class _Resolver:
    def __init__(self) -> None:
        self.writer_named: dict[str, Any] = {}
        self.reader_named: dict[str, Any] = {}

    def _deref(self, schema: Any, named: dict[str, Any], namespace: str) -> tuple[Any, str]:
        """Register named types; replace references by their definitions."""
        if isinstance(schema, str) and schema not in PRIMITIVES:
            full = schema if "." in schema else (f"{namespace}.{schema}" if namespace else schema)
            return named.get(full, named.get(schema, schema)), namespace
        if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
            full = _full_name(schema, namespace)
            named.setdefault(full, schema)
            return schema, full.rpartition(".")[0]
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            return schema["type"], namespace
        return schema, namespace

    def check(self, reader: Any, writer: Any, path: str, rns: str = "", wns: str = "") -> list[str]:
        reader, rns = self._deref(reader, self.reader_named, rns)
        writer, wns = self._deref(writer, self.writer_named, wns)
        if isinstance(writer, list):
            problems = []
            for branch in writer:
                problems += self.check(reader, branch, path, rns, wns)
            return problems
        if isinstance(reader, list):
            for branch in reader:
                if not self.check(branch, writer, path, rns, wns):
                    return []
            return [f"{path}: no branch of the reader's union accepts the writer's {_type_name(writer)}"]
        rtype, wtype = _type_name(reader), _type_name(writer)
        if isinstance(reader, str) and isinstance(writer, str):
            if reader == writer or reader in PROMOTIONS.get(writer, set()):
                return []
            return [f"{path}: writer's {writer} cannot be read as {reader}"]
        if rtype != wtype:
            return [f"{path}: writer's {wtype} cannot be read as {rtype}"]
        if rtype == "record":
            return self._record(reader, writer, path, rns, wns)
        if rtype == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [f"{path}: enum symbols {missing} were removed and the enum has no default"]
            return []
        if rtype == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]", rns, wns)
        if rtype == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}", rns, wns)
        if rtype == "fixed" and reader["size"] != writer["size"]:
            return [f"{path}: fixed size changed from {writer['size']} to {reader['size']}"]
        return []

    def _record(self, reader: dict, writer: dict, path: str, rns: str, wns: str) -> list[str]:
        if reader["name"].rpartition(".")[2] != writer["name"].rpartition(".")[2] and writer["name"] not in reader.get(
            "aliases", []
        ):
            return [f"{path}: record {writer['name']} renamed to {reader['name']} without an alias"]
        written = {f["name"]: f for f in writer["fields"]}
        problems = []
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            source = next((written[n] for n in names if n in written), None)
            where = f"{path}.{field['name']}"
            if source is None:
                if "default" not in field:
                    problems.append(f"{where}: new field without a default")
                continue
            problems += self.check(field["type"], source["type"], where, rns, wns)
        return problems


def backward_problems(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Problems that stop a reader using `new` from reading data written with `old`."""
    return _Resolver().check(new, old, new.get("name", "schema"))
