"""DNS rebinding: a receiver's name that passed the URL check (it resolved to a public address then) and
resolves to an internal address when the notifier connects is refused at the connection, in production
configuration; the loopback receiver hears nothing."""

from devstack.webhook_receivers import Receiver
from services.notifier.adapters.webhooks_delivery import WebhookDeliverer
from services.notifier.domain.webhooks import RetrySchedule
from services.notifier.webhooks import UrlPolicy


async def public_then(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]  # what the name said when it was checked: a public address


async def test_a_name_rebound_to_loopback_after_its_check_is_not_called_in_production() -> None:
    receiver = await Receiver().start()
    try:
        url = f"http://localhost:{receiver.port}/hook"  # resolves to 127.0.0.1 when connecting
        production = WebhookDeliverer(store=None, schedule=RetrySchedule(), urls=UrlPolicy(public_then, False))  # type: ignore[arg-type]
        await production.urls.check(url)  # the check alone lets it through
        headers = {"webhook-id": "n1", "content-type": "application/json"}
        async with production.session() as client:
            status, error = await production._post(client, url, headers, "{}")
        assert status is None and error is not None and "refused" in error and "127.0.0.1" in error, error
        assert receiver.received == []

        development = WebhookDeliverer(store=None, schedule=RetrySchedule(), urls=UrlPolicy(public_then, True))  # type: ignore[arg-type]
        async with development.session() as client:
            status, error = await development._post(client, url, headers, "{}")
        assert (status, error) == (200, None) and len(receiver.received) == 1  # loopback is allowed there
    finally:
        await receiver.stop()
