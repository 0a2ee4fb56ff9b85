"""Offline hand-ins (sharing.packages.OfflineChannel.hand_in) with fakes: the uploader's right is checked
before the package is claimed, and a package whose first hand-in is under way is refused as such, not as
imported."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from datashare_adapter import packages as fmt
from datashare_adapter.signing import generate_key

from common.policy import AccessDenied, Principal, Role
from services.exchange import handlers
from services.exchange.sharing.packages import (
    INGESTED,
    INGESTING,
    HandedInAlready,
    HandInClaim,
    HandInUnderWay,
    OfflineChannel,
)

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
PROVIDER = "MARKET"
KEY = generate_key()
MANIFEST = fmt.Manifest(
    package_id="pkg-1",
    kind="hand-in",
    sender=PROVIDER,
    addressed_to=fmt.CENTER,
    recipient="age1…",
    resource_code="101001/000001",
    entry_version=1,
    grant_id=None,
    purpose=None,
    items=("企业名称",),
    row_count=1,
    parts=(fmt.Part("part-0001.jsonl.gz", 1, 10, "0" * 64),),
    created_at=fmt.iso(NOW),
    expires_at=fmt.iso(NOW + timedelta(days=1)),
    signed_by="market-key",
)
ADMIN = Principal("market-admin", PROVIDER, frozenset({Role.DATA_ADMINISTRATOR}))


@dataclass
class FakeHandIns:
    """As MongoHandIns: one claim per package id; one INGESTING since before the bound is taken over."""

    held: dict[str, HandInClaim]

    async def claim(self, claim: HandInClaim, stale_before: datetime) -> HandInClaim | None:
        first = self.held.get(claim.package_id)
        if first is None or (first.status == INGESTING and first.handed_in_at < stale_before):
            self.held[claim.package_id] = claim
            return None
        return first

    async def ingested(self, claim: HandInClaim, sent: int) -> None:
        if self.held[claim.package_id].token == claim.token:
            self.held[claim.package_id] = replace(claim, status=INGESTED)

    async def release(self, claim: HandInClaim) -> None:
        if self.held.get(claim.package_id, claim).token == claim.token:
            self.held.pop(claim.package_id, None)


def channel(hand_ins: FakeHandIns, monkeypatch: pytest.MonkeyPatch, sent: list[str]) -> OfflineChannel:
    def opened(*_args: Any) -> fmt.OpenedPackage:
        return fmt.OpenedPackage(MANIFEST, Path("/nowhere"))

    async def state(_code: str, _uow: Any) -> Any:
        return SimpleNamespace(schema=SimpleNamespace(provider_code=PROVIDER))

    async def upload(code: str, *_args: Any) -> int:
        sent.append(code)
        return 1

    monkeypatch.setattr(fmt, "open_package", opened)
    monkeypatch.setattr(handlers, "resource_state", state)
    monkeypatch.setattr(handlers, "upload_rows", upload)
    keys = SimpleNamespace(key=lambda key_id: (PROVIDER, KEY.public_key()) if key_id == "market-key" else None)
    api = SimpleNamespace(clock=SimpleNamespace(now=lambda: NOW))
    return OfflineChannel(
        api=api, recipients=None, keys=SimpleNamespace(identity=None), department_keys=keys, uow=None, uploads=None,  # type: ignore[arg-type]
        hand_ins=hand_ins, downloads=None, days=30,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_a_hand_in_its_sender_may_not_make_claims_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    hand_ins, sent = FakeHandIns({}), []
    offline = channel(hand_ins, monkeypatch, sent)
    stranger = Principal("other-admin", "OTHER", frozenset({Role.DATA_ADMINISTRATOR}))
    with pytest.raises(AccessDenied):
        await offline.hand_in(Path("/nowhere/p.dspkg"), stranger, Path("/nowhere"))
    assert hand_ins.held == {} and sent == []  # nothing held against the provider's own hand-in
    assert (await offline.hand_in(Path("/nowhere/p.dspkg"), ADMIN, Path("/nowhere"))).sent == 1


async def test_a_hand_in_under_way_is_refused_as_such_and_one_imported_as_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = NOW - timedelta(minutes=5)
    running = HandInClaim("pkg-1", "d" * 64, MANIFEST.resource_code, PROVIDER, "market-admin", started)
    hand_ins, sent = FakeHandIns({"pkg-1": running}), []
    offline = channel(hand_ins, monkeypatch, sent)
    with pytest.raises(HandInUnderWay) as under_way:
        await offline.hand_in(Path("/nowhere/p.dspkg"), ADMIN, Path("/nowhere"))
    assert under_way.value.code == "package.ingesting" and "正在导入，请稍后再试" in (under_way.value.message or "")
    assert "导入，不再重复" not in (under_way.value.message or "") and sent == []

    hand_ins.held["pkg-1"] = replace(running, status=INGESTED)
    with pytest.raises(HandedInAlready) as imported:
        await offline.hand_in(Path("/nowhere/p.dspkg"), ADMIN, Path("/nowhere"))
    assert imported.value.code == "package.handed_in" and "交入并导入" in (imported.value.message or "")


async def test_a_claim_ingesting_beyond_the_bound_is_taken_over_and_the_dead_ones_release_touches_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = HandInClaim("pkg-1", "d" * 64, MANIFEST.resource_code, PROVIDER, "market-admin", NOW - timedelta(hours=2))
    hand_ins, sent = FakeHandIns({"pkg-1": dead}), []
    offline = channel(hand_ins, monkeypatch, sent)
    handed = await offline.hand_in(Path("/nowhere/p.dspkg"), ADMIN, Path("/nowhere"))
    assert handed.sent == 1 and sent == [MANIFEST.resource_code]
    assert hand_ins.held["pkg-1"].status == INGESTED and hand_ins.held["pkg-1"].token != dead.token
    await hand_ins.release(dead)  # the dead ingest's late release
    assert hand_ins.held["pkg-1"].status == INGESTED
