"""Wires the catalog service: the single place real adapters are built."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from common.clock import today_in_china
from common.http import create_app, run_service
from common.runtime import Runtime
from services.catalog import dictionary, handlers
from services.catalog.adapters import dictionary_http, http
from services.catalog.adapters.findings import ChangeFollower, KeptFindings
from services.catalog.adapters.mongo import (
    ELEMENTS,
    CachedDepartmentNames,
    EntryFollower,
    MongoUnitOfWork,
    derive_claims,
    ensure_indexes,
)
from services.catalog.adapters.search import CatalogSearchIndex, SynonymList, merged_synonyms
from services.catalog.ports import DIRECTORY_EVENTS
from services.catalog.settings import CatalogSettings


def build(settings: CatalogSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("catalog", settings)
    uow = MongoUnitOfWork(runtime, settings.version_contents_kept)
    runtime.setup.append(partial(ensure_indexes, runtime.db))
    runtime.setup.append(partial(derive_claims, uow))
    record = partial(handlers.record_department, uow=uow)
    runtime.consume(
        "catalog-directory", [DIRECTORY_EVENTS], {"DepartmentRegistered": record, "DepartmentChanged": record}
    )
    runtime.every(
        "overdue-check",
        settings.overdue_check_seconds,
        lambda: handlers.announce_overdue(uow, today_in_china()),
    )
    maintained = list(SynonymList().alias_groups())
    index = CatalogSearchIndex(merged_synonyms(maintained))

    async def refresh_synonyms() -> None:
        """Search knows the data-element dictionary's aliases too, as the IT office keeps them."""
        index.use_synonyms(merged_synonyms(maintained, await dictionary.alias_groups(uow)))

    runtime.every("synonyms", settings.synonyms_refresh_seconds, refresh_synonyms)
    findings = KeptFindings()
    follower = EntryFollower(runtime.db, index, findings.invalidate)
    runtime.follow("search-index", follower.run, lambda: follower.caught_up)
    elements = ChangeFollower(runtime.db, ELEMENTS, findings.invalidate)
    runtime.follow("dictionary-changes", elements.run, lambda: elements.caught_up)
    app = create_app(
        runtime,
        title="Catalog",
        description="The city's shared data catalog (Art. 9–12): entries, their lifecycle, the data-element "
        "dictionary and share demands.",
        routers=[
            *http.routers(uow, runtime.calendar, index, CachedDepartmentNames(uow), findings),
            dictionary_http.router(uow, findings),
        ],
    )
    return app, runtime


def main() -> None:
    run_service("catalog", CatalogSettings, build)


if __name__ == "__main__":
    main()
