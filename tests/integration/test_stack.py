"""The platform as `make up` runs it — devstack's own process list with every default but the addresses —
and `make demo` loaded into it: each event reaches its topic exactly once, and the query the demo prints
for the approval bureau's consumer system is answered with only the granted items."""

import asyncio
import csv
import os
import re
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from common.topics import load_topics
from devstack.processes import ROOT, SERVICES, free_port, service_procs, start, start_infra, stop, wait_http_ready
from examples.market_register.sharing import GRANTED
from tests.integration.console_platform import sign_in
from tests.sizes import FULL_SIZE


@pytest.fixture
def stack(tmp_path):
    """A broker and database of its own (the services' default database names must not meet other tests'),
    and the services exactly as `make up` starts them."""
    infra = start_infra(tmp_path / "infra")
    procs = service_procs(ports={name: free_port() for name in SERVICES}, infra=infra)
    try:
        for proc in procs:
            start(proc, tmp_path / "log", detach=False)
        for proc in procs:
            wait_http_ready(proc, timeout=120)
        yield infra, {p.name: p for p in procs}
    finally:
        stop(infra.procs + procs)  # stops in reverse: the services first


def run(module: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *module],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def settled_topics(
    bootstrap: str, names: list[str], stored: int, quiet: float = 5.0, timeout: float = 600
) -> dict[TopicPartition, int]:
    """End offsets of `names` once `exchange.resource-changes` holds `stored` messages and then nothing moved
    for `quiet` seconds (the relays are done)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
        deadline = time.monotonic() + timeout
        last, since = await consumer.end_offsets(partitions), time.monotonic()
        while (
            sum(n for tp, n in last.items() if tp.topic == "exchange.resource-changes") < stored
            or time.monotonic() - since < quiet
        ):
            assert time.monotonic() < deadline, f"the platform did not settle within {timeout}s"
            await asyncio.sleep(1)
            now = await consumer.end_offsets(partitions)
            if now != last:
                last, since = now, time.monotonic()
        return last
    finally:
        await consumer.stop()


async def event_ids(bootstrap: str, ends: dict[TopicPartition, int]) -> dict[str, Counter[str]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    ids: dict[str, Counter[str]] = {}
    try:
        wanted = [tp for tp, end in ends.items() if end > 0]
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        while any([await consumer.position(tp) < ends[tp] for tp in wanted]):
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                for record in records:
                    if record.offset < ends[tp] and record.value is not None:
                        event_id = dict(record.headers).get("event_id", b"").decode()
                        ids.setdefault(tp.topic, Counter())[event_id] += 1
    finally:
        await consumer.stop()
    return ids


# the enterprises of the demo's register: `make test` loads a few hundred, `make test-full-size` thousands
REGISTER = 2000 if FULL_SIZE else 300


@pytest.mark.full_size
async def test_the_demo_on_make_ups_platform_publishes_each_event_once(stack, tmp_path) -> None:
    infra, procs = stack
    urls = {f"{name.upper()}_URL": f"http://127.0.0.1:{procs[name].port}" for name in SERVICES}
    credentials = tmp_path / "demo-credentials.tsv"
    run(
        ["services.directory.cli", "demo", "--credentials", str(credentials)],
        {"DIRECTORY_MONGO_URI": infra.mongo_uri, "DIRECTORY_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap},
    )
    synced = run(
        ["examples.market_register"],
        {
            **urls,
            "DEMO_STATE_DIR": str(tmp_path),
            "DATASHARE_KAFKA": infra.bootstrap,
            "DEMO_REGISTER_SIZE": str(REGISTER),
        },
    )
    assert f"{REGISTER:,} enterprises" in synced, synced
    await printed_query_answers(synced, credentials)
    await console_shows_the_demo(procs["console"].port, credentials)

    names = [spec.name for spec in load_topics().values()]
    ends = await settled_topics(infra.bootstrap, names, stored=REGISTER)
    ids = await event_ids(infra.bootstrap, ends)
    assert sum(ids.get("exchange.resource-changes", Counter()).values()) >= REGISTER  # the register was stored
    assert {"directory.events", "catalog.entry-events", "catalog.published"} <= ids.keys()
    for topic, counts in ids.items():
        repeated = {event_id: n for event_id, n in counts.items() if n > 1}
        assert not repeated, f"{topic}: {len(repeated)} events published more than once, e.g. {list(repeated)[:3]}"


async def console_shows_the_demo(port: int, credentials) -> None:
    """The console `make up` starts: the demo's compiler of the market regulator signs in and finds the
    catalog the demo published."""
    secrets = {row[0]: row[1] for row in csv.reader(credentials.read_text().splitlines(), delimiter="\t")}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as browser:
        await sign_in(browser, "scjgj-compiler", secrets["scjgj-compiler"])
        catalog = await browser.get("/catalog")
        assert catalog.status_code == 200 and "已发布" in catalog.text, catalog.text[-1000:]
        assert (await browser.get("/inbox")).status_code == 200


async def printed_query_answers(printed: str, credentials) -> None:
    """What the demo prints a newcomer, done as printed: the consumer system's token, then the curl line."""
    system = re.search(r"client_id=(\S+) ", printed)
    call = re.search(r'-H "X-Grant-Id: (\w+)" \\\n\s+-H "X-Purpose: (\S+)" (http\S+)', printed)
    assert system and call, printed
    secrets = {row[0]: row[1] for row in csv.reader(credentials.read_text().splitlines(), delimiter="\t")}
    token_url = re.search(r"curl -s (http\S+/token)", printed)
    assert token_url, printed
    async with httpx.AsyncClient(timeout=30) as client:
        credentials_grant = {"client_id": system.group(1), "client_secret": secrets[system.group(1)]}
        token = await client.post(token_url.group(1), data={"grant_type": "client_credentials"} | credentials_grant)
        assert token.status_code == 200, token.text
        headers = {
            "Authorization": f"Bearer {token.json()['access_token']}",
            "X-Grant-Id": call.group(1),
            "X-Purpose": call.group(2),
        }
        answer = await client.get(call.group(3), headers=headers)
    assert answer.status_code == 200, answer.text
    fields = answer.json()["fields"]
    assert list(fields) == GRANTED and fields["法定代表人"] == "***", fields  # sensitive, not unmasked
