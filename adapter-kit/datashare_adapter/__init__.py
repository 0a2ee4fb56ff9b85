"""The adapter kit: what a department installs to keep the city data center in sync with its own data."""

from datashare_adapter.client import Adapter, Platform, PlatformConfig, PlatformError, notifications
from datashare_adapter.digest import ResourceDigest
from datashare_adapter.identifiers import InvalidIdentifier, validate_subject_key
from datashare_adapter.snapshot import Snapshot
from datashare_adapter.sync import check, sync

__all__ = [
    "Adapter",
    "InvalidIdentifier",
    "Platform",
    "PlatformConfig",
    "PlatformError",
    "ResourceDigest",
    "Snapshot",
    "check",
    "notifications",
    "sync",
    "validate_subject_key",
]
