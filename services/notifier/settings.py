from datetime import time, timedelta

from pydantic import AwareDatetime, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from common.identifiers import InvalidIdentifier, validate_credit_code
from common.settings import ServiceSettings
from services.notifier.adapters.sealing import SealingKeyError, SecretSealer
from services.notifier.domain.reminders import MAX_LEAD
from services.notifier.domain.webhooks import RetrySchedule

DAY = 86_400.0

# The IT office of the demo directory (`python -m services.directory.cli demo`), for development only.
DEMO_IT_OFFICE_CODE = "11360800MB0000002D"
# The leadership group of the same demo directory, for development only.
DEMO_LEADERSHIP_GROUP_CODE = "11360800MB0000003G"
# Seals webhook secrets in development and tests only (32 zero bytes): production refuses it.
DEV_SECRET_KEYS = "dev:" + "A" * 43 + "="


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", frozen=True)

    http_port: int = 8003
    # The IT office (市信息化工作办公室), as registered in the directory: it hears of disputes.
    it_office_code: str = DEMO_IT_OFFICE_CODE
    # The leadership group (领导小组), as registered in the directory: its members hear of escalated disputes and
    # of their ruling's deadline passing. Set empty: the IT office, which keeps the group's office, hears alone.
    leadership_group_code: str | None = DEMO_LEADERSHIP_GROUP_CODE
    # A resource's changes make one notice: its batch stays open while changes keep coming, until this window
    # passes without one, but no longer than change_batch_max_seconds after its first change. The changes of one
    # upload reach the notifier within a fraction of a second (the exchange relays each stored part at once), so
    # a second of quiet ends a batch; a feed trickling slower than one change a second is told change by change.
    change_window_seconds: float = Field(default=1.0, ge=0.1, le=300)
    # An idle consumer fetches again after at most this (the platform's 5 s would be most of the few seconds
    # in which a change must reach a thousand webhooks): once a second, and the data changes' consumer twice.
    kafka_idle_pause_max_seconds: float = Field(default=1.0, ge=0, le=30)
    changes_idle_pause_max_seconds: float = Field(default=0.5, ge=0, le=30)
    change_batch_max_seconds: float = Field(default=300.0, ge=0.1, le=86400)
    # The inbox keeps a read notice this long after it was read, and a data-change notice, read or not, this
    # long after it was issued; other unread notices until they are read.
    read_notice_retention_days: float = Field(default=180, gt=0, le=3650)
    change_notice_retention_days: float = Field(default=90, gt=0, le=3650)
    # A rolling upgrade: replicas of the release before may still store notices without the inbox's keys (which
    # no one could then see) for this long after a replica started; it keys them again every
    # inbox_keys_recheck_seconds until then, and once more at its end (docs/operations.md, the notifier).
    upgrade_roll_seconds: float = Field(default=900, ge=1, le=DAY)
    inbox_keys_recheck_seconds: float = Field(default=60, ge=0.1, le=3600)
    # Reminders go this many working days before a deadline's day, at this time of day (Beijing time).
    reminder_lead_working_days: int = Field(default=2, ge=1, le=MAX_LEAD)
    reminder_time: time = time(9, 0)
    # A rectification report the IT office has not answered in this many working days: its operators are reminded.
    report_answer_working_days: int = Field(default=5, ge=1, le=MAX_LEAD)
    # Such a reminder whose time had already come when its report was handled (a replay, a lagging consumer) goes
    # this long after, so that the report's answer or the finding's closure, later on the same topic, drops it.
    report_answer_overdue_grace_seconds: float = Field(default=300, ge=0, le=3600)
    # Departments that chose a daily digest get it at this time of day (Beijing time).
    digest_time: time = time(8, 30)
    # The timer sleeps until the next due batch or reminder; work another replica scheduled waits at most this.
    timer_max_sleep_seconds: float = Field(default=300, ge=1, le=3600)
    # Starts the notifier's clock at this instant (it runs on from there), for drills and tests of deadlines;
    # never in production.
    clock_start: AwareDatetime | None = None

    # Webhooks. Receivers on loopback, private or link-local addresses: allowed unless set to false in
    # development (tests and `make run` use loopback receivers), refused in production unless set to true.
    webhook_allow_private_targets: bool | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)  # one request, connecting included
    webhook_concurrency: int = Field(default=32, ge=1, le=1000)  # requests in flight at once
    # Retries: the n-th waits first * factor**(n-1), at most longest, jittered to 50-100 %; a delivery still
    # failing give_up_after its first attempt is dead (listed and replayable). Production needs >= 24 h.
    webhook_retry_first_seconds: float = Field(default=5.0, gt=0, le=3600)
    webhook_retry_factor: float = Field(default=2.0, ge=1, le=10)
    webhook_retry_longest_seconds: float = Field(default=7200.0, gt=0, le=DAY)
    webhook_give_up_after_seconds: float = Field(default=25 * 3600.0, gt=0, le=30 * DAY)
    # After a rotation the old secret keeps signing beside the new one this long (unless the call says).
    webhook_rotation_overlap_seconds: float = Field(default=DAY, ge=0, le=7 * DAY)
    # Signing secrets are stored sealed (AES-256-GCM) with these keys, "id:base64 of 32 bytes", comma-separated:
    # the first seals, all open. To rotate, put a new key first and keep the old one until the next start has
    # sealed every secret again. Production refuses the development key.
    webhook_secret_keys: SecretStr = SecretStr(DEV_SECRET_KEYS)
    # The worker wakes when this process queues deliveries; ones queued by another replica wait this long.
    webhook_idle_check_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("it_office_code")
    @classmethod
    def _credit_code(cls, value: str) -> str:
        try:
            return validate_credit_code(value)
        except InvalidIdentifier as exc:
            raise ValueError(f"the IT office's unified social credit code: {exc}") from None

    @field_validator("leadership_group_code")
    @classmethod
    def _group_code(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return validate_credit_code(value)
        except InvalidIdentifier as exc:
            raise ValueError(f"the leadership group's unified social credit code: {exc}") from None

    @field_validator("webhook_secret_keys")
    @classmethod
    def _sealing_keys(cls, value: SecretStr) -> SecretStr:
        try:
            SecretSealer.parse(value.get_secret_value())
        except SealingKeyError as exc:
            raise ValueError(f"the webhook secrets' sealing keys: {exc}") from None
        return value

    def sealer(self) -> SecretSealer:
        return SecretSealer.parse(self.webhook_secret_keys.get_secret_value())

    @property
    def webhooks_allow_private(self) -> bool:
        if self.webhook_allow_private_targets is None:
            return self.environment != "production"
        return self.webhook_allow_private_targets

    def retry_schedule(self) -> RetrySchedule:
        return RetrySchedule(
            first=timedelta(seconds=self.webhook_retry_first_seconds),
            factor=self.webhook_retry_factor,
            longest=timedelta(seconds=self.webhook_retry_longest_seconds),
            give_up_after=timedelta(seconds=self.webhook_give_up_after_seconds),
        )

    @model_validator(mode="after")
    def _webhooks_in_production(self) -> "NotifierSettings":
        if self.environment == "production" and self.webhook_give_up_after_seconds < DAY:
            raise ValueError(
                "webhook_give_up_after_seconds: production retries a webhook for at least 24 hours (86400)"
            )
        return self

    @model_validator(mode="after")
    def _office_in_production(self) -> "NotifierSettings":
        if self.change_batch_max_seconds < self.change_window_seconds:
            raise ValueError(
                "change_batch_max_seconds: a batch of changes is open at least its window; set "
                "NOTIFIER_CHANGE_BATCH_MAX_SECONDS at or above NOTIFIER_CHANGE_WINDOW_SECONDS"
            )
        if self.environment == "production" and self.it_office_code == DEMO_IT_OFFICE_CODE:
            raise ValueError(
                "it_office_code: production needs NOTIFIER_IT_OFFICE_CODE, the IT office's unified social credit "
                "code as registered in the directory (the default is the demo directory's)"
            )
        if self.environment == "production" and self.leadership_group_code == DEMO_LEADERSHIP_GROUP_CODE:
            raise ValueError(
                "leadership_group_code: production needs NOTIFIER_LEADERSHIP_GROUP_CODE, the leadership group's "
                "unified social credit code as registered in the directory, or empty for the IT office to hear alone "
                "(the default is the demo directory's)"
            )
        if self.environment == "production" and self.clock_start is not None:
            raise ValueError("clock_start: a shifted clock is for drills and tests; unset NOTIFIER_CLOCK_START")
        if self.environment == "production" and self.webhook_secret_keys.get_secret_value() == DEV_SECRET_KEYS:
            raise ValueError(
                "webhook_secret_keys: production needs its own NOTIFIER_WEBHOOK_SECRET_KEYS (id:base64 of 32 random "
                "bytes), not the development key"
            )
        return self
