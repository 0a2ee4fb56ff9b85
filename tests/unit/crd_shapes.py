"""Structural JSON Schemas for the Strimzi and MongoDB Community objects of deploy/k8s.

Neither operator's published CRD schema is installable from a package registry, so these are written by hand
from the CRDs' documented fields (Strimzi kafka.strimzi.io/v1beta2, MongoDB Community
mongodbcommunity.mongodb.com/v1): they cover only the fields the manifests use, refuse any other field at
those levels (a misspelt key fails), and check the enumerations that matter (listener types, authentication,
ACL operations and resource types, node roles). They are not the operators' full schemas.
"""

from typing import Any

NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
QUANTITY = {"type": ["string", "integer"], "pattern": r"^[0-9.]+(m|Ki|Mi|Gi|Ti)?$"}
RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "propertyNames": {"enum": ["cpu", "memory"]}, "additionalProperties": QUANTITY},
        "limits": {"type": "object", "propertyNames": {"enum": ["cpu", "memory"]}, "additionalProperties": QUANTITY},
    },
}


def _object(spec: dict[str, Any], api_version: str, kind: str, needs_cluster: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": NAME, "namespace": NAME, "labels": LABELS, "annotations": LABELS},
        "additionalProperties": False,
    }
    if needs_cluster:
        metadata["required"] = ["name", "labels"]
        metadata["properties"] = {
            **metadata["properties"],
            "labels": {**LABELS, "required": ["strimzi.io/cluster"]},
        }
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": metadata,
            "spec": spec,
        },
    }


STRIMZI = "kafka.strimzi.io/v1beta2"
AUTHENTICATION = {
    "type": "object",
    "required": ["type"],
    "additionalProperties": False,
    "properties": {"type": {"enum": ["tls", "scram-sha-512", "oauth", "custom"]}},
}
LISTENER = {
    "type": "object",
    "required": ["name", "port", "type", "tls"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
        "port": {"type": "integer", "minimum": 9092},
        "type": {"enum": ["internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"]},
        "tls": {"type": "boolean"},
        "authentication": AUTHENTICATION,
        "networkPolicyPeers": {"type": "array", "items": {"type": "object"}},
    },
}
KAFKA = _object(
    {
        "type": "object",
        "required": ["kafka"],
        "additionalProperties": False,
        "properties": {
            "kafka": {
                "type": "object",
                "required": ["listeners"],
                "additionalProperties": False,
                "properties": {
                    "version": {"type": "string"},
                    "metadataVersion": {"type": "string"},
                    "listeners": {"type": "array", "minItems": 1, "items": LISTENER},
                    "authorization": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["simple", "opa", "keycloak", "custom"]}},
                    },
                    "config": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean"]}},
                },
            },
            "entityOperator": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"topicOperator": {"type": "object"}, "userOperator": {"type": "object"}},
            },
            "kafkaExporter": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"topicRegex": {"type": "string"}, "groupRegex": {"type": "string"}},
            },
        },
    },
    STRIMZI,
    "Kafka",
    needs_cluster=False,
)
KAFKA_NODE_POOL = _object(
    {
        "type": "object",
        "required": ["replicas", "roles", "storage"],
        "additionalProperties": False,
        "properties": {
            "replicas": {"type": "integer", "minimum": 1},
            "roles": {"type": "array", "minItems": 1, "items": {"enum": ["controller", "broker"]}},
            "storage": {
                "type": "object",
                "required": ["type", "volumes"],
                "additionalProperties": False,
                "properties": {
                    "type": {"const": "jbod"},
                    "volumes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "type", "size"],
                            "additionalProperties": False,
                            "properties": {
                                "id": {"type": "integer"},
                                "type": {"enum": ["persistent-claim", "ephemeral"]},
                                "size": QUANTITY,
                                "deleteClaim": {"type": "boolean"},
                                "kraftMetadata": {"const": "shared"},
                            },
                        },
                    },
                },
            },
            "resources": RESOURCES,
            "template": {"type": "object", "propertyNames": {"enum": ["pod", "podSet", "perPodService"]}},
        },
    },
    STRIMZI,
    "KafkaNodePool",
)
KAFKA_TOPIC = _object(
    {
        "type": "object",
        "required": ["partitions", "replicas"],
        "additionalProperties": False,
        "properties": {
            "topicName": {"type": "string", "pattern": r"^[a-zA-Z0-9._\-]{1,249}$"},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean"]}},
        },
    },
    STRIMZI,
    "KafkaTopic",
)
ACL = {
    "type": "object",
    "required": ["resource", "operations"],
    "additionalProperties": False,
    "properties": {
        "resource": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                "name": {"type": "string"},
                "patternType": {"enum": ["literal", "prefix"]},
            },
        },
        "operations": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {
                "enum": [
                    "Read",
                    "Write",
                    "Create",
                    "Delete",
                    "Alter",
                    "Describe",
                    "ClusterAction",
                    "AlterConfigs",
                    "DescribeConfigs",
                    "IdempotentWrite",
                    "All",
                ]
            },
        },
        "host": {"type": "string"},
        "type": {"enum": ["allow", "deny"]},
    },
}
KAFKA_USER = _object(
    {
        "type": "object",
        "required": ["authentication", "authorization"],
        "additionalProperties": False,
        "properties": {
            "authentication": AUTHENTICATION,
            "authorization": {
                "type": "object",
                "required": ["type", "acls"],
                "additionalProperties": False,
                "properties": {"type": {"const": "simple"}, "acls": {"type": "array", "items": ACL}},
            },
        },
    },
    STRIMZI,
    "KafkaUser",
)
SECRET_REF = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {"name": NAME}}
MONGODB_COMMUNITY = _object(
    {
        "type": "object",
        "required": ["members", "type", "version", "security", "users"],
        "additionalProperties": False,
        "properties": {
            "members": {"type": "integer", "minimum": 1},
            "type": {"const": "ReplicaSet"},
            "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
            "security": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "authentication": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "modes": {
                                "type": "array",
                                "items": {"enum": ["SCRAM", "SCRAM-SHA-1", "SCRAM-SHA-256", "X509"]},
                            }
                        },
                    },
                    "tls": {"type": "object"},
                },
            },
            "users": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "db", "passwordSecretRef", "roles", "scramCredentialsSecretName"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "db": {"type": "string"},
                        "passwordSecretRef": SECRET_REF,
                        "roles": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["name", "db"],
                                "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "db": {"type": "string"}},
                            },
                        },
                        "scramCredentialsSecretName": NAME,
                        "connectionStringSecretName": NAME,
                    },
                },
            },
            "additionalMongodConfig": {"type": "object"},
            "statefulSet": {
                "type": "object",
                "required": ["spec"],
                "additionalProperties": False,
                "properties": {
                    "spec": {"type": "object", "propertyNames": {"enum": ["template", "volumeClaimTemplates"]}}
                },
            },
        },
    },
    "mongodbcommunity.mongodb.com/v1",
    "MongoDBCommunity",
    needs_cluster=False,
)

SHAPES: dict[str, dict[str, Any]] = {
    "Kafka": KAFKA,
    "KafkaNodePool": KAFKA_NODE_POOL,
    "KafkaTopic": KAFKA_TOPIC,
    "KafkaUser": KAFKA_USER,
    "MongoDBCommunity": MONGODB_COMMUNITY,
}
