"""Offline exchange through a running exchange: a consumer department without a connection receives a package
of exactly what its grant opens, which only its registered age key opens and the adapter kit's tool checks
whole — a flipped byte, a cut-off copy, an expired package and one for another department each refused with
its own reason — and a provider hands its data in the same way, ingested as an upload."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from datashare_adapter import package_cli
from datashare_adapter import packages as fmt
from datashare_adapter.cli import main as adapter_cli
from datashare_adapter.signing import generate_key, private_pem

from common.codec import EventCodec
from common.mongo import connect
from common.policy import Role
from devstack.samples import catalog_published
from services.exchange.ports import DATA_CHANGES
from services.exchange.settings import DEV_SUBJECT_SECRET_FILE
from services.exchange.sharing.adapters.download_store import CONSENTS, consent_doc
from services.exchange.sharing.adapters.grant_docs import GRANTS, grant_doc
from services.exchange.sharing.adapters.packages import DIGEST_INDEX, HAND_INS, MongoHandIns, ensure_indexes
from services.exchange.sharing.consents import ConsentStatus, PublicationConsent
from services.exchange.sharing.grants import MASK, Channel, subject_hash
from services.exchange.sharing.packages import INGESTED, INGESTING, HandInClaim
from tests.adapter_keys import key_file, register_adapter_key
from tests.integration.conftest import read_topic, settings_for
from tests.integration.test_api_channel import APPROVAL, ITEMS, PURPOSE, enterprise, grant
from tests.integration.test_exchange import KEYS, OTHER, PROVIDER, adapter_for, exchange_knowing, until
from tests.tokens import bearer

HERE, THERE, NEW = enterprise("360821", 11), enterprise("360822", 12), enterprise("360821", 13)
GRANTED = ("统一社会信用代码", "企业名称", "法定代表人", "联系电话")


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as ended:
        adapter_cli(["package", *args])
    return int(ended.value.code or 0)


def refusal(package: Path, identity: str, department: str, center_pem: str, **at: datetime) -> str:
    with pytest.raises(fmt.PackageRefused) as refused:
        package_cli.open_from_center(package, identity, department, center_pem, None, at.get("now"))
    return refused.value.code.value


async def test_a_package_opens_what_the_grant_opens_for_its_department_only(
    infra, topics, services, tmp_path: Path
) -> None:
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    entry = catalog_published(code, PROVIDER, ITEMS)
    entry.payload["share_methods"] = ["API", "OFFLINE"]
    entry.payload["confidentiality_reviewed_on"] = date(2026, 1, 5)
    entry.payload["data_items"] = [
        stated | {"sensitive": item.get("sensitive", False)}
        for stated, item in zip(entry.payload["data_items"], ITEMS, strict=True)
    ]
    files = tmp_path / "files"
    # a package is kept as a download file is: here for 8 s once made
    exchange = await exchange_knowing(
        infra, services, tmp_path, entry, download_dir=str(files), download_keep_seconds="8"
    )
    async with adapter_for(infra, exchange) as adapter:
        for key, name in [(HERE, "吉安甲公司"), (THERE, "吉安乙公司")]:
            fields = {"统一社会信用代码": key, "企业名称": name, "法定代表人": "张三", "联系电话": "13800000000"}
            await adapter.upsert(code, key, fields | {"注册资本": 100.0}, 1)
    provider = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=exchange.url, headers=provider) as client:
        assert await until(lambda: _held(client, f"/resources/{code}/records/{THERE}"))
    mongo = connect(settings_for(infra))
    await mongo[exchange.env["EXCHANGE_MONGO_DATABASE"]][GRANTS].insert_many(
        [
            grant_doc(grant("p-offline", code, consumer_system=None, channels=frozenset({Channel.OFFLINE}))),
            grant_doc(grant("p-api", code, consumer_system=None)),
        ]
    )
    # the provider consented to publishing every item of the package (the key in clear among them)
    consent = PublicationConsent(
        "c-offline", "p-offline", code, PROVIDER, APPROVAL, GRANTED, "吉安市政府门户网站", "公示", "li",
        date(2026, 6, 1), date(2026, 6, 15), ConsentStatus.APPROVED,
    )  # fmt: skip
    await mongo[exchange.env["EXCHANGE_MONGO_DATABASE"]][CONSENTS].insert_one(consent_doc(consent))

    # each department registers the age key its packages are encrypted to; the center publishes its own keys
    keys = {}
    for department in (APPROVAL, OTHER):
        path = tmp_path / f"{department}.age"
        assert cli("keygen", str(path)) == 0
        keys[department] = path.read_text().strip()
    person = bearer(APPROVAL, Role.DATA_ADMINISTRATOR, subject="approval-admin")
    async with httpx.AsyncClient(base_url=exchange.url, headers=person) as client:
        center = (await client.get("/.well-known/offline-package-keys")).json()
        for department in (APPROVAL, OTHER):
            public = str(fmt.identity_of(keys[department]).to_public())
            admin = bearer(department, Role.DATA_ADMINISTRATOR, subject=f"admin-{department}")
            put = await client.put(f"/offline/recipients/{department}", json={"recipient": public}, headers=admin)
            assert put.status_code == 200, put.text
        not_theirs = await client.put(f"/offline/recipients/{OTHER}", json={"recipient": public})
        assert not_theirs.status_code == 403  # only the department's own data administrator
        center_pem = tmp_path / "center.pem"
        center_pem.write_text(center["signing_public_key_pem"])

        # the package: made under the grant, with its purpose, by a job followed as a download is
        calling = {"X-Grant-Id": "p-offline", "X-Purpose": quote(PURPOSE)}
        started = await client.post(f"/offline/packages/{code}", headers=calling)
        assert started.status_code == 202, started.text
        assert started.json()["format"] == "PACKAGE" and started.headers["location"] == started.json()["file"][:-5]

        async def ready() -> dict | None:
            job = (await client.get(started.headers["location"])).json()
            return job if job["status"] != "RUNNING" else None

        job = await until(ready, timeout=20)
        assert job and job["status"] == "READY" and job["rows_done"] == job["rows_total"] == 2, job
        assert job["rows_written"] == 1 and "c-offline" in job["notice"]
        other_department = bearer(OTHER, Role.DATA_ADMINISTRATOR, subject="other-admin")
        assert (await client.get(job["file"], headers=other_department)).status_code == 404  # not theirs
        made = await client.get(job["file"])
        assert made.status_code == 200, made.text
        package = tmp_path / "from-center.dspkg"
        package.write_bytes(made.content)
        assert hashlib.sha256(made.content).hexdigest() == job["sha256"] and len(made.content) == job["size"]
        kept = files / f"{job['download_id']}.dspkg"
        assert kept.exists() and not list(files.glob("*.part"))
        # a grant that does not open the offline channel opens no package, and says why
        api_only = await client.post(f"/offline/packages/{code}", headers=calling | {"X-Grant-Id": "p-api"})
        assert api_only.status_code == 403 and "OFFLINE" in api_only.json()["detail"]

    # the addressed department opens it with the tool: its granted items of the rows in scope, nothing else
    out = tmp_path / "opened"
    key_path = str(tmp_path / f"{APPROVAL}.age")
    assert cli("open", str(package), "--identity", key_path, "--department", APPROVAL, "--center-key",
               str(center_pem), "--out", str(out)) == 0  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [r["subject_key"] for r in rows] == [HERE] and manifest["row_count"] == 1
    assert rows[0]["fields"] == {
        "统一社会信用代码": HERE,
        "企业名称": "吉安甲公司",
        "法定代表人": "张三",
        "联系电话": MASK,
    }
    assert manifest["grant_id"] == "p-offline" and manifest["items"] == list(GRANTED)
    assert "c-offline" in manifest["notice"] and "吉安市政府门户网站" in manifest["notice"]  # as a download says
    assert manifest["addressed_to"] == APPROVAL and manifest["entry_version"] == 1
    assert manifest["package_id"] == job["download_id"]
    assert all(len(p["sha256"]) == 64 for p in manifest["parts"])
    assert "吉安乙公司" not in (out / "rows.jsonl").read_text()

    # refused, each with its reason: a flipped byte, a cut-off copy, expired, another department's
    data, pem = package.read_bytes(), center_pem.read_text()
    flipped, cut = tmp_path / "flipped.dspkg", tmp_path / "cut.dspkg"
    flipped.write_bytes(data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0x01]) + data[len(data) // 2 + 1 :])
    cut.write_bytes(data[: len(data) - 100])
    mine = keys[APPROVAL]
    assert refusal(flipped, mine, APPROVAL, pem) == "package.tampered"
    assert refusal(cut, mine, APPROVAL, pem) == "package.truncated"
    later = datetime.fromisoformat(manifest["expires_at"]) + timedelta(seconds=1)
    assert refusal(package, mine, APPROVAL, pem, now=later) == "package.expired"
    assert refusal(package, keys[OTHER], OTHER, pem) == "package.misaddressed"
    assert cli("verify", str(flipped), "--identity", key_path, "--department", APPROVAL,
               "--center-key", str(center_pem)) == package_cli.REFUSED  # fmt: skip

    # the package is an access through the offline channel, as is the refusal
    codec = EventCodec.from_folder()
    found = await read_topic(
        infra.bootstrap, "exchange.data-accesses", 2, timeout=15, where=lambda r: code.encode() in (r.value or b"")
    )
    events = sorted((codec.decode(r.value)[1] for r in found), key=lambda e: e["result"])
    assert [(e["channel"], e["operation"], e["result"]) for e in events] == [
        ("OFFLINE", "package", "REFUSED"),
        ("OFFLINE", "package", "SERVED"),
    ]
    assert events[1]["record_count"] == 1 and events[1]["grant_id"] == "p-offline"
    # and names the subjects it holds as the API channel's accesses do: hashed with the center's secret
    secret = DEV_SUBJECT_SECRET_FILE.read_text().strip().encode()  # the running exchange's, in development
    assert events[1]["subject_hashes"] == [subject_hash(HERE, secret)] and events[1]["subjects_requested"] == 1

    # and once its time is over the package is deleted, as a download's file is
    assert await until(lambda: _gone(kept), timeout=15)


async def test_a_department_hands_its_data_in_as_an_upload(infra, topics, services, tmp_path: Path) -> None:
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    entry = catalog_published(code, PROVIDER, ITEMS)
    entry.payload["share_methods"] = ["API", "OFFLINE"]
    exchange = await exchange_knowing(infra, services, tmp_path, entry)
    admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR, subject="market-admin")
    async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:
        center = (await client.get("/.well-known/offline-package-keys")).json()
        table = tmp_path / "table.csv"
        table.write_text(f"统一社会信用代码,企业名称,注册资本\n{NEW},吉安丙公司,300\n", encoding="utf-8")
        package = tmp_path / "hand-in.dspkg"
        adapter_key = str(key_file("market-adapter", KEYS))  # the adapter key the directory registered
        assert cli("make", code, "--file", str(table), "--department", PROVIDER, "--key", adapter_key,
                   "--center-recipient", center["age_recipient"], "--out", str(package)) == 0  # fmt: skip

        # refused before anything is read: a flipped byte, a key the directory never registered
        data = package.read_bytes()
        flipped = data[:-50] + bytes([data[-50] ^ 0x01]) + data[-49:]
        tampered = await client.post("/offline/hand-ins", files={"file": ("p.dspkg", flipped)})
        assert tampered.status_code == 422 and tampered.json()["code"] == "package.tampered"
        stranger = tmp_path / "stranger.pem"
        stranger.write_text(private_pem(generate_key()))
        unknown = tmp_path / "unknown.dspkg"
        package_cli.make_for_center(code, table, PROVIDER, stranger, center["age_recipient"], unknown)
        unsigned = await client.post("/offline/hand-ins", files={"file": ("p.dspkg", unknown.read_bytes())})
        assert unsigned.status_code == 422 and unsigned.json()["code"] == "package.signature"
        # a package another department signed with its own registered key is not the provider's data
        await register_adapter_key(infra, "other-adapter", OTHER)
        theirs_signed = tmp_path / "other.dspkg"
        other_key = key_file("other-adapter", KEYS)
        package_cli.make_for_center(code, table, OTHER, other_key, center["age_recipient"], theirs_signed)
        assert await until(lambda: _refused_as(client, theirs_signed, "package.signature", "not by"))
        # only the provider's data administrator hands in its data, as only she uploads it
        other = bearer(OTHER, Role.DATA_ADMINISTRATOR, subject="other-admin")
        theirs = await client.post("/offline/hand-ins", files={"file": ("p.dspkg", data)}, headers=other)
        assert theirs.status_code == 403

        handed = await client.post("/offline/hand-ins", files={"file": ("p.dspkg", data)})
        assert handed.status_code == 202, handed.text
        assert handed.json()["sent"] == 1 and handed.json()["resource_code"] == code
        assert await until(lambda: _held(client, f"/resources/{code}/records/{NEW}"))
        record = (await client.get(f"/resources/{code}/records/{NEW}")).json()
        assert record["fields"]["企业名称"] == "吉安丙公司"

        # the same package again is taken once: refused, saying so in Chinese, and the first stands
        again = await client.post("/offline/hand-ins", files={"file": ("p.dspkg", data)})
        assert again.status_code == 409, again.text
        assert again.json()["code"] == "package.handed_in" and "不再重复导入" in again.json()["message"]
        assert handed.json()["package_id"] in again.json()["message"]
    mongo = connect(settings_for(infra))
    hand_ins = mongo[exchange.env["EXCHANGE_MONGO_DATABASE"]][HAND_INS]
    taken = await hand_ins.find_one({"_id": handed.json()["package_id"]})
    await mongo.close()
    assert taken is not None and taken["status"] == "INGESTED" and taken["sent"] == 1
    assert taken["handed_in_by"] == "market-admin" and len(taken["manifest_sha256"]) == 64
    changes = await read_topic(
        infra.bootstrap,
        DATA_CHANGES,
        2,
        timeout=2,
        where=lambda r: NEW.encode() in r.value and code.encode() in r.value,
    )
    assert len(changes) == 1  # its rows went on once


async def test_a_hand_in_claim_whose_ingest_died_is_taken_over_once_and_only_after_the_bound(infra) -> None:
    """The claim is the database's: a claim INGESTING since before the bound is taken over atomically (of two
    hand-ins at once, one), a younger one is answered with as it stands, and a late release or completion of
    the claim taken over touches nothing. The digest index an earlier version made is dropped."""
    settings = settings_for(infra)
    mongo = connect(settings)
    db = mongo[settings.mongo_database]
    try:
        await db[HAND_INS].create_index("manifest_sha256", unique=True)  # as the earlier version made it
        await ensure_indexes(db)
        assert DIGEST_INDEX not in await db[HAND_INS].index_information()
        store, now = MongoHandIns(db), datetime.now(UTC).replace(microsecond=0)

        def claim(at: datetime, by: str = "market-admin") -> HandInClaim:
            return HandInClaim("pkg-1", "d" * 64, "101001/000001", PROVIDER, by, at)

        dead = claim(now - timedelta(hours=2))
        assert await store.claim(dead, now - timedelta(hours=3)) is None
        young = await store.claim(claim(now), now - timedelta(hours=3))  # not yet beyond the bound
        assert young is not None and young.status == INGESTING and young.token == dead.token

        takers = [claim(now, "a"), claim(now, "b")]
        results = await asyncio.gather(*(store.claim(c, now - timedelta(hours=1)) for c in takers))
        assert sorted(r is None for r in results) == [False, True]  # one took it over
        winner = takers[results.index(None)]
        held = await db[HAND_INS].find_one({"_id": "pkg-1"})
        assert held is not None and held["token"] == winner.token and held["handed_in_by"] == winner.handed_in_by

        await store.release(dead)  # the dead ingest's late release
        await store.ingested(dead, 99)
        held = await db[HAND_INS].find_one({"_id": "pkg-1"})
        assert held is not None and held["token"] == winner.token and held["status"] == INGESTING
        await store.ingested(winner, 3)
        first = await store.claim(claim(now + timedelta(hours=5)), now + timedelta(hours=4))
        assert first is not None and first.status == INGESTED  # an imported one is never taken over
    finally:
        await mongo.drop_database(settings.mongo_database)
        await mongo.close()


async def _refused_as(client: httpx.AsyncClient, package: Path, code: str, words: str) -> bool:
    """Refused with `code` and `words` (the exchange learns a newly registered key a moment later)."""
    answer = await client.post("/offline/hand-ins", files={"file": ("p.dspkg", package.read_bytes())})
    return answer.status_code == 422 and answer.json()["code"] == code and words in answer.json()["detail"]


async def _gone(path: Path) -> bool:
    return not path.exists()


async def _held(client: httpx.AsyncClient, path: str) -> bool:
    return (await client.get(path)).status_code == 200
