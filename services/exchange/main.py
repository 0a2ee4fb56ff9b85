"""Wires the exchange service: the single place real adapters are built."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from functools import partial
from pathlib import Path

from datashare_adapter import packages as fmt
from fastapi import FastAPI

from common.auth import development_key, load_signing_key
from common.clock import FixedDay, SystemClock
from common.http import create_app, run_service
from common.runtime import Runtime
from services.exchange import handlers
from services.exchange.adapters import http, mongo
from services.exchange.adapters.senders import SignedSenders
from services.exchange.adapters.uploads import ProcessUploads
from services.exchange.ports import CATALOG_ENTRY_EVENTS, CATALOG_PUBLISHED, DATA_CHANGES
from services.exchange.settings import (
    DEV_CREDENTIAL_KEY_FILE,
    DEV_KEY_FILE,
    DEV_PACKAGE_IDENTITY_FILE,
    DEV_PACKAGE_KEY_FILE,
    DEV_SUBJECT_SECRET_FILE,
    INGEST_OUTBOX,
    ExchangeSettings,
)
from services.exchange.sharing import api
from services.exchange.sharing import handlers as sharing_handlers
from services.exchange.sharing.access import ApiChannel
from services.exchange.sharing.adapters import (
    download_routes,
    download_store,
    hosted_mongo,
    hosted_routes,
    package_routes,
)
from services.exchange.sharing.adapters import mongo as sharing_mongo
from services.exchange.sharing.adapters import packages as package_store
from services.exchange.sharing.adapters import routes as sharing_routes
from services.exchange.sharing.adapters.accesses import (
    GroupedAccessLog,
    MongoGrants,
    RecentResources,
    publish_accesses,
)
from services.exchange.sharing.adapters.catalog_events import catalog_handlers
from services.exchange.sharing.adapters.department_http import HttpDepartmentServices
from services.exchange.sharing.adapters.directory_events import directory_handlers
from services.exchange.sharing.adapters.download_files import FolderFiles
from services.exchange.sharing.adapters.packages import MongoHandIns, MongoRecipients, RegisteredKeys, center_keys
from services.exchange.sharing.consents import Consents
from services.exchange.sharing.downloads import Downloads
from services.exchange.sharing.handlers import Sharing
from services.exchange.sharing.hosted import HostedServiceFailed
from services.exchange.sharing.packages import OfflineChannel
from services.exchange.sharing.ports import DIRECTORY_EVENTS
from services.exchange.sharing.proxy import HostedChannel, Hosting
from services.exchange.sharing.requests import Deadlines


def signing_key(settings: ExchangeSettings) -> str:
    """The configured key; in development a key kept in .var/ (production requires one, see the settings)."""
    if settings.signing_key is not None:
        return settings.signing_key.get_secret_value()
    return development_key(DEV_KEY_FILE)


def subject_secret(settings: ExchangeSettings) -> bytes:
    """The secret access events hash subject keys with; in development one kept in .var/."""
    if settings.subject_secret is not None:
        return settings.subject_secret.get_secret_value().encode()
    return _development_secret(DEV_SUBJECT_SECRET_FILE)


def hosted_credential_key(settings: ExchangeSettings) -> bytes:
    """The key hosted services' credentials are sealed under; in development one kept in .var/."""
    if settings.hosted_credential_key is not None:
        return settings.hosted_credential_key.get_secret_value().encode()
    return _development_secret(DEV_CREDENTIAL_KEY_FILE)


def _development_secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def package_keys(settings: ExchangeSettings) -> tuple[str, str]:
    """The center's package signing key and age identity; in development ones kept in .var/."""
    if settings.package_signing_key is not None and settings.package_age_identity is not None:
        return settings.package_signing_key.get_secret_value(), settings.package_age_identity.get_secret_value()
    if not DEV_PACKAGE_IDENTITY_FILE.exists():
        DEV_PACKAGE_IDENTITY_FILE.parent.mkdir(parents=True, exist_ok=True)
        DEV_PACKAGE_IDENTITY_FILE.write_text(fmt.generate_identity()[0])
        DEV_PACKAGE_IDENTITY_FILE.chmod(0o600)
    return development_key(DEV_PACKAGE_KEY_FILE), DEV_PACKAGE_IDENTITY_FILE.read_text().strip()


def api_channel(
    settings: ExchangeSettings, runtime: Runtime, uow: mongo.MongoUnitOfWork, sharing: Sharing
) -> ApiChannel:
    """The API channel; it counts grants' periods by the sharing lifecycle's clock (EXCHANGE_SHARING_TODAY
    included), so a grant is open on exactly the days the lifecycle issued it for."""
    secret = subject_secret(settings)
    accesses = GroupedAccessLog(
        partial(publish_accesses, runtime.publisher, settings.access_record_timeout_seconds),
        secret,
        linger=settings.access_flush_ms / 1000,
        most=settings.access_flush_events,
        timeout=settings.access_record_timeout_seconds,
    )
    runtime.follow("access-log", accesses.run, lambda: True)
    return ApiChannel(
        grants=MongoGrants(runtime.db, settings.grant_cache_seconds),
        resources=RecentResources(uow, settings.grant_cache_seconds),
        data=uow,
        log=accesses,
        clock=SystemClock(),
        days=sharing.clock,
        secret=secret,
    )


def downloads(
    settings: ExchangeSettings, runtime: Runtime, uow: mongo.MongoUnitOfWork, channel: ApiChannel, consents: Consents
) -> Downloads:
    """The file-download channel: the API channel's check and access log, files in the configured folder."""
    store = download_store.MongoDownloads(runtime.db, uow)
    runtime.setup.append(partial(download_store.ensure_indexes, runtime.db))
    channel_of_files = Downloads(
        channel=channel,
        store=store,
        files=FolderFiles(settings.download_dir),
        consents=consents.store,
        counts=store,
        clock=SystemClock(),
        secret=subject_secret(settings),
        keep=timedelta(seconds=settings.download_keep_seconds),
        beat=timedelta(seconds=settings.download_beat_seconds),
    )
    runtime.follow("download-expiry", channel_of_files.expire, lambda: True)
    return channel_of_files


def build(settings: ExchangeSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("exchange", settings)
    own_key = load_signing_key(signing_key(settings))
    uow = mongo.MongoUnitOfWork(runtime)
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db))
    if settings.role in ("all", "ingest"):
        runtime.setup.append(partial(mongo.count_records, runtime.db))
        runtime.consume(
            "exchange-ingest",
            [DATA_CHANGES],
            batch=partial(
                handlers.ingest_changes, uow=uow, senders=SignedSenders(runtime.revocations.adapter_keys, own_key)
            ),
            batch_size=settings.ingest_batch_size,
        )
    if settings.role == "ingest":
        runtime.outbox = INGEST_OUTBOX
        title = "Exchange ingestion"
        description = "Ingests departments' data changes (Art. 13, 14); health and metrics only."
        return create_app(runtime, title=title, description=description, routers=[]), runtime
    uploads = ProcessUploads(settings, own_key)
    runtime.setup.append(uploads.start)
    upload_slots = asyncio.Semaphore(settings.upload_concurrency)  # uploads and offline hand-ins alike
    runtime.consume(
        "exchange-catalog",
        [CATALOG_PUBLISHED, CATALOG_ENTRY_EVENTS],
        {
            "CatalogEntryPublished": partial(handlers.catalog_entry_published, uow=uow),
            "CatalogEntryWithdrawn": partial(handlers.catalog_entry_withdrawn, uow=uow),
        },
    )
    sharing = build_sharing(settings, runtime)
    runtime.setup.append(partial(sharing_mongo.ensure_indexes, runtime.db))
    runtime.consume("exchange-sharing", [CATALOG_PUBLISHED, CATALOG_ENTRY_EVENTS], catalog_handlers(sharing))
    runtime.every("sharing-sweep", settings.sharing_sweep_seconds, partial(sharing_handlers.sweep, sharing))
    departments = sharing_mongo.MongoDepartmentNames(runtime)
    runtime.consume("exchange-departments", [DIRECTORY_EVENTS], directory_handlers(runtime.keys, departments))
    app = create_app(
        runtime,
        title="Exchange",
        description="Departments' data held by the center, and its sharing (Art. 8, 13–18, 20).",
        # the API channel first: its /resources/<code>/openapi.json goes before the catch-all /resources/<code>
        routers=[
            api.services,
            api.browse,
            *http.routers(uow, uploads, upload_slots),
            *sharing_routes.ROUTERS,
            *download_routes.ROUTERS,
            *hosted_routes.ROUTERS,
            package_routes.offline,
        ],
    )
    app.state.api_channel = api_channel(settings, runtime, uow, sharing)
    app.state.consents = Consents(
        download_store.MongoConsents(runtime), sharing.clock, runtime.calendar, settings.sharing_decision_days
    )
    app.state.downloads = downloads(settings, runtime, uow, app.state.api_channel, app.state.consents)
    build_hosting(settings, runtime, app, uow)
    runtime.setup.append(partial(package_store.ensure_indexes, runtime.db))
    app.state.offline = OfflineChannel(
        api=app.state.api_channel,
        recipients=MongoRecipients(runtime.db),
        keys=center_keys(*package_keys(settings)),
        department_keys=RegisteredKeys(runtime.revocations.adapter_keys),
        uow=uow,
        uploads=uploads,
        hand_ins=MongoHandIns(runtime.db),
        downloads=app.state.downloads,
        days=settings.package_days,
    )
    app.state.upload_slots = upload_slots
    app.state.sharing = sharing
    app.state.departments = departments
    return app, runtime


def build_hosting(settings: ExchangeSettings, runtime: Runtime, app: FastAPI, uow: mongo.MongoUnitOfWork) -> None:
    """Department-hosted services: their store, the pooled client that calls them, and the proxied channel
    over the API channel's check and access log."""
    seal = hosted_mongo.CredentialSeal(hosted_credential_key(settings))
    department = HttpDepartmentServices(
        allow_private=settings.hosted_allow_private,
        connect_timeout=settings.hosted_connect_timeout_seconds,
        timeout=settings.hosted_timeout_seconds,
        max_answer_bytes=settings.hosted_max_answer_bytes,
    )
    runtime.setup.append(partial(hosted_mongo.ensure_indexes, runtime.db))
    runtime.follow("hosted-client", partial(_closing_at_stop, department), lambda: True)
    app.state.hosting = Hosting(
        store=hosted_mongo.MongoHostedStore(runtime, seal),
        resources=RecentResources(uow, 0),
        department=department,
        clock=SystemClock(),
    )
    app.state.hosted_channel = HostedChannel(
        app.state.api_channel,
        hosted_mongo.RecentTargets(runtime.db, seal, settings.grant_cache_seconds),
        department,
        settings.hosted_max_request_bytes,
        settings.hosted_max_subjects,
    )
    app.add_exception_handler(HostedServiceFailed, hosted_routes.hosted_failed)


async def _closing_at_stop(department: HttpDepartmentServices) -> None:
    """Holds the pooled client for as long as the service runs, and closes its connections at the stop."""
    try:
        await asyncio.Event().wait()
    finally:
        await department.close()


def build_sharing(settings: ExchangeSettings, runtime: Runtime) -> Sharing:
    """The sharing lifecycle's store, clock, calendar and deadlines."""
    return Sharing(
        store=sharing_mongo.MongoSharingStore(runtime),
        clock=FixedDay(settings.sharing_today) if settings.sharing_today else SystemClock(),
        calendar=runtime.calendar,
        deadlines=Deadlines(
            settings.sharing_decision_days, settings.sharing_ruling_days, settings.sharing_final_ruling_days
        ),
    )


def main() -> None:
    run_service("exchange", ExchangeSettings, build)


if __name__ == "__main__":
    main()
