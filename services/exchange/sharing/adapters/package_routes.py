"""REST routes of the offline channel: the center's public keys, departments' age keys, packages made under a
grant (jobs of the download channel: followed and fetched at /downloads/<id>), and packages handed in. Each
translates, calls the channel and shapes the answer."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Annotated, BinaryIO

from datashare_adapter import packages as fmt
from fastapi import APIRouter, Depends, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from common.fields import Code
from common.guard import Guard
from common.http import RETRY_AFTER_SECONDS
from common.policy import Principal
from services.exchange.sharing.access import Call, Operation
from services.exchange.sharing.adapters.download_routes import DownloadView
from services.exchange.sharing.api import calls
from services.exchange.sharing.grants import Channel as SharingChannel
from services.exchange.sharing.packages import RECIPIENT_RULE, OfflineChannel, remove


async def offline_channel(request: Request) -> OfflineChannel:
    """The channel the exchange's bootstrap built (services.exchange.main)."""
    channel: OfflineChannel = request.app.state.offline
    return channel


async def upload_slots(request: Request) -> asyncio.Semaphore:
    """The slots uploads take: a hand-in is an upload, and shares them."""
    slots: asyncio.Semaphore = request.app.state.upload_slots
    return slots


Offline = Annotated[OfflineChannel, Depends(offline_channel)]
# a package is the offline channel's call of a grant: checked and recorded as such, refusals included
Packaged = Annotated[Call, Depends(calls(lambda _request: Operation.PACKAGE, SharingChannel.OFFLINE))]
Slots = Annotated[asyncio.Semaphore, Depends(upload_slots)]
Public = [Depends(Guard("public"))]
KeyRegistrar = Annotated[Principal, Depends(Guard(RECIPIENT_RULE))]
Uploader = Annotated[Principal, Depends(Guard("exchange.data.upload"))]


class CenterKeysView(BaseModel):
    signing_key_id: str
    signing_public_key_pem: str = Field(description="Ed25519: the center signs every package's manifest with it")
    age_recipient: str = Field(description="the age public key a department encrypts its hand-ins to")
    format: str


class RecipientBody(BaseModel):
    recipient: str = Field(max_length=200, description="an age X25519 public key, age1…")


class RecipientView(BaseModel):
    department_code: str
    recipient: str


class HandInView(BaseModel):
    package_id: str
    resource_code: str
    sent: int = Field(description="rows sent on as data changes, as an upload's")


offline = APIRouter(tags=["offline exchange"])


@offline.get(
    "/.well-known/offline-package-keys",
    dependencies=Public,
    response_model=CenterKeysView,
    summary="The center's keys for offline packages: its signature's public key and its age recipient",
)
async def center_keys(channel: Offline) -> CenterKeysView:
    return CenterKeysView(**channel.keys.published)


@offline.put(
    "/offline/recipients/{department_code}",
    response_model=RecipientView,
    summary="Register the age public key the department's offline packages are encrypted to",
)
async def register_recipient(
    department_code: Code, body: RecipientBody, principal: KeyRegistrar, channel: Offline
) -> RecipientView:
    await channel.register_recipient(department_code, body.recipient, principal)
    return RecipientView(department_code=department_code, recipient=body.recipient.strip())


@offline.post(
    "/offline/packages/{resource_code:path}",
    status_code=202,
    response_model=DownloadView,
    summary="Make an offline package of what the grant opens (a job: GET /downloads/<id>, then its file)",
    description=(
        "The package holds what the grant opens through the offline channel, signed by the center and encrypted"
        " to the department's registered age key. Its fetch is recorded as one DataAccessed (channel OFFLINE,"
        " operation package) counting all its rows and naming at most 1,000 of its subjects (the first ones,"
        " hashed, as a batch query's access names them)."
    ),
)
async def make_package(
    call: Packaged,
    channel: Offline,
    response: Response,
    days: Annotated[int | None, Query(ge=1, le=365, description="how long it may be opened")] = None,
) -> DownloadView:
    job = DownloadView.of(await channel.package(call, days))
    response.headers["Location"] = f"/downloads/{job.download_id}"
    return job


@offline.post(
    "/offline/hand-ins",
    status_code=202,
    response_model=HandInView,
    summary="Hand in a department's offline package: checked whole, then ingested as an upload",
    description=(
        "A package is taken once: handed in again it is refused with 409, `package.handed_in` once imported,"
        " `package.ingesting` while its first hand-in is under way (retry later)."
    ),
)
async def hand_in(file: UploadFile, principal: Uploader, channel: Offline, slots: Slots) -> HandInView | JSONResponse:
    if slots.locked():
        body = {
            "detail": "as many uploads as the exchange takes at once are under way; retry later",
            "error": "ServiceUnavailable",
            "dependency": "uploads",
            "reason": "all upload slots taken",
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    folder = await asyncio.to_thread(fmt.private_folder)
    try:
        async with slots:
            package = folder / "package.dspkg"
            await asyncio.to_thread(_copy, file.file, package)
            handed = await channel.hand_in(package, principal, folder)
    finally:
        await asyncio.to_thread(remove, folder)
    return HandInView(package_id=handed.package_id, resource_code=handed.resource_code, sent=handed.sent)


def _copy(source: BinaryIO, target: Path) -> None:
    source.seek(0)
    with target.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
