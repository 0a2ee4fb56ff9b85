"""Refusing a request with every broken rule at once, one shape for the catalog's entries and its dictionary:
the fields named, the rules in English, their codes and their Chinese messages in the same order."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

from common.errors import Invalid
from services.catalog.domain.wording import message


@dataclass(frozen=True)
class Problem:
    """One broken rule: the field, the rule in English, its code and the blanks of its Chinese message."""

    field: str
    rule: str
    code: str
    params: dict[str, object] = dataclass_field(default_factory=dict)

    @property
    def words(self) -> str:
        return message(self.code, **self.params)


def refuse(problems: list[Problem], error_type: type[Invalid]) -> None:
    """Raise `error_type` naming every problem, if there is any."""
    if problems:
        names = ", ".join(dict.fromkeys(p.field for p in problems))
        error = error_type(names, "; ".join(f"{p.field} {p.rule}" for p in problems))
        error.code = ", ".join(dict.fromkeys(p.code for p in problems))
        error.message = "；".join(dict.fromkeys(p.words for p in problems))
        raise error
