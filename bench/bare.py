"""The API benchmark's baseline: a bare FastAPI app that reads one MongoDB document by id, with nothing of
the platform around it — no middleware, no token, no policy. Run by bench.api under uvicorn with uvloop and
httptools, as the services run; it reads `BARE_MONGO_URI` and `BARE_MONGO_DATABASE`."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from pymongo import AsyncMongoClient

from services.exchange.adapters.mongo import RECORDS

client: AsyncMongoClient = AsyncMongoClient(os.environ["BARE_MONGO_URI"])
records = client[os.environ["BARE_MONGO_DATABASE"]][RECORDS]
app = FastAPI()


@app.get("/records/{record_id:path}")
async def record(record_id: str) -> dict[str, Any]:
    doc = await records.find_one({"_id": record_id})
    if doc is None:
        raise HTTPException(404)
    return doc
