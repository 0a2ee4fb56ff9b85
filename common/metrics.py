"""Prometheus metrics shared by every service. Adapters and wrappers count; the domain never does."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter("datashare_events_published_total", "Events written to Kafka", ["topic", "event_type"])
EVENTS_CONSUMED = Counter(
    "datashare_events_consumed_total",
    "Events taken from Kafka by outcome (handled, duplicate, dead_lettered)",
    ["group", "topic", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "datashare_event_handler_seconds", "Time spent in an event handler", ["group", "event_type"]
)
HANDLER_RETRIES = Counter("datashare_event_handler_retries_total", "Handler retries", ["group", "topic"])
OUTBOX_PENDING = Gauge(
    "datashare_outbox_pending", "Outbox documents (one per transaction) not yet relayed to Kafka", ["outbox"]
)
OUTBOX_RELAYED = Counter("datashare_outbox_relayed_total", "Outbox messages relayed to Kafka", ["outbox"])
OUTBOX_PARKED_TOTAL = Counter(
    "datashare_outbox_parked_total", "Outbox documents the broker refused for good, set aside", ["outbox"]
)
DEPENDENCY_UP = Gauge("datashare_dependency_up", "1 when the dependency answered its last check", ["dependency"])
HTTP_REQUESTS = Counter(
    "datashare_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram("datashare_http_request_seconds", "HTTP request latency", ["method", "route"])
CALENDAR_FALLBACK = Counter(
    "datashare_calendar_fallback_total", "Years with no holiday schedule, counted as weekends only", ["year"]
)
AUTH_FAILURES = Counter("datashare_auth_failures_total", "Refused requests: unauthenticated or forbidden", ["kind"])
ACCESS_GROUP_SIZE = Histogram(
    "datashare_access_log_group_size",
    "Data accesses written per outbox transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
ACCESS_WRITE_SECONDS = Histogram(
    "datashare_access_log_write_seconds", "Time to write one group of data accesses", ["outcome"]
)
