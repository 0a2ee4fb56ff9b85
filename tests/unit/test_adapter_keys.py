"""Adapters' signed changes checked against the key state the directory announced."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from datashare_adapter.signing import generate_key, key_id, public_pem

from common.adapter_keys import AdapterKeys
from common.events import Event
from common.policy import Unauthenticated
from tests.adapter_keys import signed

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
KEY = generate_key()
PAYLOAD = {
    "change_id": "c1",
    "resource_code": "101001/000001",
    "provider_code": "P1",
    "operation": "UPSERT",
    "subject_key": "91360800MA0000001X",
    "fields": {"name": "甲"},
    "source_version": 3,
    "changed_at": T0,
}


def registered(keys: AdapterKeys, client_id: str = "adapter-p1") -> None:
    payload = {
        "key_id": key_id(KEY.public_key()),
        "client_id": client_id,
        "department_code": "P1",
        "public_key": public_pem(KEY.public_key()),
        "registered_by": "admin",
        "registered_at": T0,
    }
    keys.apply("AdapterKeyRegistered", payload, T0)


def change() -> Event:
    return signed(Event("DataChanged", "101001/000001|x", dict(PAYLOAD), "adapter", event_id="e1"), "p1", KEY)


def test_a_registered_key_names_its_owner() -> None:
    keys = AdapterKeys()
    registered(keys)
    owner = keys.owner(change(), T0 + timedelta(minutes=1))
    assert (owner.client_id, owner.department_code) == ("adapter-p1", "P1")


@pytest.mark.parametrize("field", ["subject_key", "operation", "source_version", "resource_code", "fields"])
def test_a_change_altered_after_signing_is_refused(field: str) -> None:
    keys = AdapterKeys()
    registered(keys)
    event = change()
    altered = {"subject_key": "91360800MA0000002X", "operation": "DELETE", "source_version": 4}
    altered |= {"resource_code": "101001/000002", "fields": {"name": "乙"}}
    forged = replace(event, payload=event.payload | {field: altered[field]})
    if field == "fields":  # not named in the signed input: the value's digest covers it
        assert event.signature is not None
        forged = replace(forged, signature=replace(event.signature, value_digest=b"\0" * 32))
    with pytest.raises(Unauthenticated, match="does not verify"):
        keys.owner(forged, T0)
    with pytest.raises(Unauthenticated, match="does not verify"):
        keys.owner(replace(event, event_id="e2"), T0)
    with pytest.raises(Unauthenticated, match="does not verify"):
        keys.owner(replace(event, producer="adapter-other"), T0)


def test_revocation_counts_from_when_the_broker_appended_the_change() -> None:
    keys = AdapterKeys()
    registered(keys)
    revoked_at = T0 + timedelta(hours=1)
    keys.apply("AdapterKeyRevoked", {"key_id": key_id(KEY.public_key()), "revoked_at": revoked_at}, revoked_at)
    assert keys.owner(change(), revoked_at - timedelta(milliseconds=1)).client_id == "adapter-p1"
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.owner(change(), revoked_at)
    registered(keys)  # a replayed registration never brings the key back
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.owner(change(), revoked_at + timedelta(seconds=1))


def test_a_revoked_machine_signs_nothing_more() -> None:
    keys = AdapterKeys()
    registered(keys)
    keys.apply("MachineIdentityRevoked", {"client_id": "adapter-p1"}, T0 + timedelta(hours=2))
    assert keys.owner(change(), T0 + timedelta(hours=1)).client_id == "adapter-p1"
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.owner(change(), T0 + timedelta(hours=3))


def test_unknown_and_missing_signatures_are_refused() -> None:
    keys = AdapterKeys()
    with pytest.raises(Unauthenticated, match="never registered"):
        keys.owner(change(), T0)
    with pytest.raises(Unauthenticated, match="unsigned"):
        keys.owner(replace(change(), signature=None), T0)


async def test_key_state_is_awaited_until_known_for_the_append_time() -> None:
    keys = AdapterKeys()
    keys.advanced((T0 + timedelta(seconds=1)).timestamp())
    await keys.known_at(T0)
    with pytest.raises(TimeoutError):
        await keys.known_at(T0 + timedelta(seconds=2), timeout=0.05)
    assert keys.wanted.is_set()  # the follower is asked to look at once
