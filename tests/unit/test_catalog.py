from contextlib import AbstractAsyncContextManager

import pytest

from common.identifiers import credit_code_check_character
from common.policy import AccessDenied, Principal, Role
from services.catalog import handlers
from services.catalog.domain.entries import CatalogEntry, DraftEntry, EntryExists, InvalidEntry, ShareType
from tests.unit.fakes import FakeStore, FakeTransaction, committing

PROVIDER = "11360800MB1234567" + credit_code_check_character("11360800MB1234567")
COMPILER = Principal("compiler-1", PROVIDER, frozenset({Role.CATALOG_COMPILER}))


class FakeEntries:
    def __init__(self, tx: FakeTransaction) -> None:
        self.rows = tx.table("entries")

    async def get(self, resource_code: str) -> CatalogEntry | None:
        return self.rows.get(resource_code)

    async def add(self, entry: CatalogEntry) -> None:
        self.rows[entry.resource_code] = entry


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.store = FakeStore()

    def __call__(self) -> AbstractAsyncContextManager:
        tx = FakeTransaction(self.store)
        tx.entries = FakeEntries(tx)  # type: ignore[attr-defined]
        return committing(self.store, tx)

    async def entry(self, resource_code: str) -> CatalogEntry | None:
        return self.store.table("entries").get(resource_code)


def command(**changes: object) -> DraftEntry:
    values = {
        "resource_code": "101001/000001",
        "name": " 企业登记基本信息 ",
        "provider_code": PROVIDER.lower(),
        "share_type": ShareType.CONDITIONAL,
        "compiled_by": "compiler-1",
    } | changes
    return DraftEntry(**values)  # type: ignore[arg-type]


async def test_drafting_stores_the_entry_and_announces_it() -> None:
    uow = FakeUnitOfWork()
    entry = await handlers.draft_entry(command(), COMPILER, uow)
    assert entry.name == "企业登记基本信息" and entry.provider_code == PROVIDER
    assert await handlers.get_entry("101001/000001", uow) == entry
    [(topic, event)] = uow.store.events
    assert topic == "catalog.entry-events" and event.event_type == "CatalogEntryDrafted"
    assert event.key == "101001/000001" and event.payload["version"] == 1


async def test_a_second_draft_of_the_same_code_is_refused_and_nothing_is_emitted() -> None:
    uow = FakeUnitOfWork()
    await handlers.draft_entry(command(), COMPILER, uow)
    with pytest.raises(EntryExists):
        await handlers.draft_entry(command(name="另一个"), COMPILER, uow)
    assert len(uow.store.events) == 1
    assert uow.store.table("entries")["101001/000001"].name == "企业登记基本信息"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"resource_code": "10101/000001"}, "resource_code"),
        ({"name": "  "}, "name"),
        ({"provider_code": "91350100M000100Y44"}, "provider_code"),
        ({"share_type": ShareType.NOT_SHARED}, "not_shared_basis"),
    ],
)
async def test_invalid_drafts_name_the_field_and_store_nothing(changes: dict, field: str) -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(InvalidEntry) as error:
        await handlers.draft_entry(command(**changes), COMPILER, uow)
    assert error.value.field == field
    assert uow.store.events == [] and uow.store.table("entries") == {}


async def test_a_compiler_of_another_department_is_refused_and_nothing_is_stored() -> None:
    uow = FakeUnitOfWork()
    outsider = Principal("compiler-2", "11360800MB0000002D", frozenset({Role.CATALOG_COMPILER}))
    with pytest.raises(AccessDenied, match="own department"):
        await handlers.draft_entry(command(), outsider, uow)
    assert uow.store.events == [] and uow.store.table("entries") == {}
