"""The console's own metrics, beside the HTTP ones every service has (common.metrics): how the services it
shows answered its calls, so a dashboard tells a slow page from a service that refuses or does not answer."""

from __future__ import annotations

from prometheus_client import Counter

SERVICE_CALLS = Counter(
    "datashare_console_service_calls_total",
    "The console's calls to the services by outcome: answered, refused (4xx), sign_in (401), unavailable;"
    " bad_answer (besides answered: not the JSON asked for)",
    ["service", "outcome"],
)
