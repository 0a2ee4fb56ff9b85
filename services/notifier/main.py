"""Wires the notifier service: the single place real adapters are built."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from common.clock import SystemClock
from common.http import create_app, run_service
from common.runtime import Runtime
from services.notifier import handlers
from services.notifier.adapters import events, http, mongo, webhooks_delivery, webhooks_http, webhooks_mongo
from services.notifier.adapters.timing import Timer
from services.notifier.adapters.topics import KafkaDepartmentTopics
from services.notifier.domain.reminders import ReminderPolicy
from services.notifier.ports import DIRECTORY_EVENTS, RESOURCE_CHANGES, SUBSCRIBED
from services.notifier.settings import NotifierSettings
from services.notifier.webhooks import UrlPolicy, WebhookChannel


def build(settings: NotifierSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("notifier", settings)
    retention = mongo.Retention(
        read=timedelta(days=settings.read_notice_retention_days),
        changes=timedelta(days=settings.change_notice_retention_days),
    )
    clock = SystemClock(settings.clock_start)
    sealer = settings.sealer()
    store = webhooks_mongo.MongoWebhookStore(runtime.db, sealer)
    urls = UrlPolicy(webhooks_delivery.resolve, allow_private=settings.webhooks_allow_private)
    deliverer = webhooks_delivery.WebhookDeliverer(
        store,
        settings.retry_schedule(),
        urls,
        concurrency=settings.webhook_concurrency,
        timeout=settings.webhook_timeout_seconds,
        idle_check=settings.webhook_idle_check_seconds,
        clock=clock.now,
    )
    uow = mongo.MongoUnitOfWork(runtime, retention, on_deliveries=deliverer.hand_over, hold=deliverer.lease)
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db, retention))
    runtime.setup.append(partial(webhooks_mongo.ensure_indexes, runtime.db, sealer))
    roll = timedelta(seconds=settings.upgrade_roll_seconds)
    recheck = timedelta(seconds=settings.inbox_keys_recheck_seconds)
    # notices replicas of the release before store during a rolling upgrade (docs/operations.md)
    runtime.periodic["inbox-keys"] = partial(mongo.key_inbox_through_roll, runtime.db, roll, recheck)
    runtime.periodic["webhook-delivery"] = deliverer.run  # started once the database is set up; restarted on failure
    notifier_ref: list[handlers.Notifier] = []
    timer = Timer(lambda: handlers.fire_due(notifier_ref[0]), clock.now, settings.timer_max_sleep_seconds)
    notifier = handlers.Notifier(
        uow=uow,
        clock=clock,
        topics=KafkaDepartmentTopics(runtime.publisher, settings),
        timer=timer,
        reminders=ReminderPolicy(runtime.calendar, settings.reminder_lead_working_days, settings.reminder_time),
        it_office_code=settings.it_office_code,
        leadership_group_code=settings.leadership_group_code,
        change_window=timedelta(seconds=settings.change_window_seconds),
        change_batch_longest=timedelta(seconds=settings.change_batch_max_seconds),
        digest_time=settings.digest_time,
        report_answer_days=settings.report_answer_working_days,
        overdue_grace=timedelta(seconds=settings.report_answer_overdue_grace_seconds),
    )
    notifier_ref.append(notifier)
    runtime.consume("notifier", SUBSCRIBED, events.subscriptions(notifier))
    changes_pause = settings.changes_idle_pause_max_seconds
    runtime.consume(
        "notifier-changes", [RESOURCE_CHANGES], batch=events.resource_changes(notifier), idle_pause_max=changes_pause
    )
    runtime.consume("notifier-directory", [DIRECTORY_EVENTS], events.directory_subscriptions(notifier, runtime.keys))
    runtime.periodic["timer"] = timer.run
    app = create_app(
        runtime,
        title="Notifier",
        description="Tells departments what concerns them (Art. 11, 15, 17): inbox over REST, a Kafka topic per "
        "department, signed webhooks (Standard Webhooks) to the departments' systems, events on Kafka.",
        routers=[http.router, webhooks_http.router],
    )
    overlap = timedelta(seconds=settings.webhook_rotation_overlap_seconds)
    app.state.webhooks = WebhookChannel(store, urls, overlap, clock.now)
    app.state.notifier_uow = uow
    app.state.notifier = notifier
    return app, runtime


def main() -> None:
    run_service("notifier", NotifierSettings, build)


if __name__ == "__main__":
    main()
