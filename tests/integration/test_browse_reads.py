"""The exchange's store as a browse page reads it, on the real database: key ranges from a position on, after
the last subject shown, never past the page's last range nor into another resource."""

from __future__ import annotations

import uuid

from datashare_adapter.digest import BUCKETS, bucket_of

from common.runtime import Runtime
from services.exchange.adapters.mongo import RECORDS, MongoUnitOfWork, record_doc, record_id
from services.exchange.domain.records import SubjectRecord
from tests.integration.conftest import settings_for
from tests.integration.console_sharing_platform import enterprise

CODE, OTHER = "101001/000001", "101001/000002"


def stored(code: str, key: str, deleted: bool = False) -> dict:
    record = SubjectRecord(code, "11360800MB0000001", key, "credit_code", {"k": key}, 1, deleted, bucket=bucket_of(key))
    return {"_id": record_id(code, key)} | record_doc(record)


async def test_a_browse_reads_its_key_ranges_after_the_last_subject_shown(infra) -> None:
    database = f"brw_{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build("exchange", settings_for(infra, mongo_database=database))
    uow = MongoUnitOfWork(runtime)
    try:
        keys = [enterprise("360821", n) for n in range(1, 41)]
        gone = keys.pop()
        docs = [stored(CODE, k) for k in keys] + [stored(CODE, gone, deleted=True)]
        await runtime.db[RECORDS].insert_many(docs + [stored(OTHER, k) for k in keys])
        order = sorted(keys, key=lambda k: (bucket_of(k), k))

        async def read(bucket: int, after: str, until: int) -> list[str]:
            return [r.subject_key async for r in uow.records_from(CODE, bucket, after, until)]

        assert await read(0, "", BUCKETS) == order  # every undeleted record of the resource, in page order
        middle = order[len(order) // 2]
        assert await read(bucket_of(middle), middle, BUCKETS) == order[len(order) // 2 + 1 :]
        until = bucket_of(order[-5])
        assert await read(0, "", until) == [k for k in order if bucket_of(k) < until]  # the page's last range
        assert await read(bucket_of(order[3]), "", bucket_of(order[3]) + 1) == [
            k for k in order if bucket_of(k) == bucket_of(order[3])
        ]
    finally:
        await runtime.client.drop_database(database)
        await runtime.client.close()
