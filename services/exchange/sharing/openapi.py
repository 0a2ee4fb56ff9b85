"""Each shared resource's interface services as an OpenAPI description generated from its catalog entry: the
entry's shareable data items become the typed fields of its record (Art. 16: services registered with a
description and calling method)."""

from __future__ import annotations

from typing import Any

from common.errors import NotFound
from services.exchange.domain.resources import ItemSpec, ResourceSchema
from services.exchange.sharing.access import MAX_BATCH, NOT_SHARED, registered

TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "decimal": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "binary": {"type": "string", "contentEncoding": "base64"},
}


def item_schema(item: ItemSpec, key_item: str | None) -> dict[str, Any]:
    schema = dict(TYPES.get(item.type, {"type": "string"}))
    if item.length and item.type == "string":
        schema["maxLength"] = item.length
    notes = []
    if item.name == key_item:
        notes.append("the subject's identifier (the record's key)")
    if item.sensitive:
        notes.append("sensitive: '***' unless the grant names this item")
        schema = {"anyOf": [schema, {"const": "***"}]}
    schema["description"] = "; ".join(notes) or item.name
    return schema


def _headers() -> list[dict[str, Any]]:
    return [
        {
            "name": "X-Grant-Id",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "maxLength": 64},
            "description": "the grant the call relies on",
        },
        {
            "name": "X-Purpose",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "maxLength": 2000},
            "description": "the grant's purpose, percent-encoded UTF-8 (e.g. %E5%AE%A1%E6%89%B9)",
        },
        {
            "name": "items",
            "in": "query",
            "required": False,
            "schema": {"type": "array", "items": {"type": "string", "maxLength": 64}},
            "description": "the data items wanted; default every item the grant opens",
        },
    ]


def _answers(ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": {"description": "served", "content": {"application/json": {"schema": ok}}},
        "401": {"description": "no, an invalid, expired or revoked access token"},
        "403": {"description": "the grant does not open this call; `detail` says why"},
        "404": {"description": "no such record within the grant (absent or outside its scope alike)"},
        "422": {"description": "malformed input, or more than the call takes"},
        "503": {"description": "the access could not be recorded, so nothing was served; retry"},
    }


def describe(schema: ResourceSchema | None) -> dict[str, Any]:
    if schema is None or not registered(schema):
        raise NotFound("resource_code", "the exchange registers no interface service for this resource")
    code = schema.resource_code
    items = [i for i in schema.items if schema.item_share_type(i.name) != NOT_SHARED]
    record = {"$ref": "#/components/schemas/Record"}
    base = f"/services/{code}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{schema.name} ({code})",
            "version": str(schema.version),
            "description": f"Interface services of resource {code}, provided by {schema.provider_code} "
            f"({schema.share_type}). Every call names its grant and states its purpose; only the items and "
            "subjects the grant opens are served, and every call is recorded.",
        },
        "security": [{"bearer": []}],
        "paths": {
            f"{base}/records/{{subject_key}}": {
                "get": {
                    "operationId": "record",
                    "summary": "One subject's record",
                    "parameters": [
                        {"name": "subject_key", "in": "path", "required": True, "schema": {"type": "string"}},
                        *_headers(),
                    ],
                    "responses": _answers(record),
                }
            },
            f"{base}/records": {
                "post": {
                    "operationId": "batch",
                    "summary": f"Records of up to {MAX_BATCH} subjects",
                    "parameters": _headers(),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["subject_keys"],
                                    "properties": {
                                        "subject_keys": {
                                            "type": "array",
                                            "maxItems": MAX_BATCH,
                                            "items": {"type": "string", "maxLength": 64},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": _answers(
                        {
                            "type": "object",
                            "properties": {
                                "records": {"type": "array", "items": record},
                                "not_found": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    ),
                }
            },
            f"{base}/changes": {
                "get": {
                    "operationId": "changes",
                    "summary": "The change feed after `since`",
                    "parameters": [
                        {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                        *_headers(),
                    ],
                    "responses": _answers({"$ref": "#/components/schemas/Feed"}),
                }
            },
            f"{base}/digest": {
                "get": {
                    "operationId": "digest",
                    "summary": "The consistency digest of what the grant shows",
                    "parameters": _headers(),
                    "responses": _answers(
                        {
                            "type": "object",
                            "properties": {
                                "records": {"type": "integer"},
                                "tops": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    ),
                }
            },
            f"{base}/digest/leaves": {
                "get": {
                    "operationId": "digest_leaves",
                    "summary": "Leaves [sum, count] under the given top nodes",
                    "parameters": [
                        {
                            "name": "top",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}},
                        },
                        *_headers(),
                    ],
                    "responses": _answers({"type": "object"}),
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Fields": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {i.name: item_schema(i, schema.key_item) for i in items},
                },
                "Record": {
                    "type": "object",
                    "properties": {
                        "subject_key": {"type": "string"},
                        "fields": {"$ref": "#/components/schemas/Fields"},
                        "source_version": {"type": "integer"},
                        "changed_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
                "Feed": {
                    "type": "object",
                    "properties": {
                        "changes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "sequence": {"type": "integer"},
                                    "subject_key": {"type": "string"},
                                    "operation": {"type": "string", "enum": ["UPSERT", "DELETE"]},
                                    "fields": {"$ref": "#/components/schemas/Fields"},
                                    "source_version": {"type": "integer"},
                                    "changed_at": {"type": "string", "format": "date-time"},
                                },
                            },
                        },
                        "last_sequence": {"type": "integer"},
                    },
                },
            },
        },
    }
