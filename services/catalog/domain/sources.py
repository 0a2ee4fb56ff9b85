"""One data, one source (Art. 12): a data element already provided by an authoritative department is not
collected again. A second source is flagged with the existing provider and is not published without a
recorded legal exception."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ElementSource:
    provider_code: str
    resource_code: str


@dataclass(frozen=True)
class SourceClash:
    element: str
    existing_provider: str
    existing_resource: str


def element_key(name: str) -> str:
    """Names compare without white space and case: 「统一社会信用代码」 == 「统一社会信用代码 」."""
    return re.sub(r"\s+", "", name).casefold()


def clashes(provider_code: str, item_names: list[str], registry: dict[str, ElementSource]) -> list[SourceClash]:
    found = []
    for name in item_names:
        source = registry.get(element_key(name))
        if source is not None and source.provider_code != provider_code:
            found.append(SourceClash(name, source.provider_code, source.resource_code))
    return found


def unresolved(found: list[SourceClash], exceptions: dict[str, str]) -> list[SourceClash]:
    excepted = {element_key(e) for e in exceptions}
    return [c for c in found if element_key(c.element) not in excepted]
