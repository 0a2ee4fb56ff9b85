"""The auditor's evaluation figures in MongoDB (the trail is in trail_mongo)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

ACCESS_COUNTS = "evaluation_data_accesses"  # written by the stream worker (services/auditor/stream.py)


class MongoEvaluation:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db

    async def data_access_counts(self) -> dict[str, int]:
        return {doc["_id"]: doc["count"] async for doc in self.db[ACCESS_COUNTS].find({})}
