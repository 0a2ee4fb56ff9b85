"""The offline channel (Art. 16): packages carried on a medium to and from departments whose systems are not
connected. The file format is the adapter kit's (datashare_adapter.packages), so the department's tool and
the center read and write the same thing.

To a department: a package under a grant is an access like any other. The API channel's one check decides
what it opens (`ApiChannel.open` with the PACKAGE operation, which goes through the OFFLINE channel): the
grant's items, its rows, its purpose and period. It is made by the download channel's job (a million rows
outlast any request): asked for, followed at GET /downloads/<id> (rows done, of how many), fetched once READY
— checked against the grant again and recorded as a DataAccessed (channel OFFLINE) naming its subjects as the
API channel's do, at most 1,000 (MAX_BATCH: its first ones; the event counts all its rows) — and deleted as
download files are; a refusal is recorded as every refusal is. It is
signed with the center's Ed25519 key and encrypted to the age key the consumer department registered.

From a department: a hand-in package, signed with a key the department registered with the directory for its
adapter and encrypted to the center's age key, is opened and checked whole, then its table goes the way of
an upload (`handlers.upload_rows`): the same row checks, all or nothing, the same DataChanged events. A
package is taken once: once the hand-in is checked and its uploader authorized, its id is claimed (the
database's _id) before its rows go on, so a second hand-in of it is refused (409: `package.handed_in` once
imported, `package.ingesting` while the first is under way) and the first stands as it was. A claim still
ingesting after INGEST_BOUND is the claim of an ingest that died (its process killed before it could let
go): the next hand-in takes it over."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from datashare_adapter import packages as fmt
from datashare_adapter.signing import key_id, public_pem
from pyrage import x25519

from common.clock import CHINA
from common.errors import Conflict, Invalid
from common.policy import Principal, Target, authorize
from services.exchange import handlers
from services.exchange.domain.records import SubjectRecord
from services.exchange.ports import UnitOfWork, UploadSender
from services.exchange.sharing.access import MAX_BATCH, ApiChannel, Call, Opened, Operation
from services.exchange.sharing.consents import notice_of
from services.exchange.sharing.downloads import WORK, Download, Downloads, FileFormat
from services.exchange.sharing.grants import pseudonym

RECIPIENT_RULE = "exchange.offline.recipient"
NO_RECIPIENT = "the department has registered no age key for offline packages (PUT /offline/recipients/<code>)"


class Recipients(Protocol):
    """The age public keys departments registered for the packages the center makes them."""

    async def recipient(self, department_code: str) -> str | None: ...

    async def register(self, department_code: str, recipient: str, registered_by: str, at: datetime) -> None: ...


class DepartmentKeys(Protocol):
    def key(self, key_id: str) -> tuple[str, Ed25519PublicKey] | None:
        """(department, public key) of an adapter key the directory registered and nobody revoked."""
        ...


UPLOAD_RULE = "exchange.data.upload"  # a hand-in is an upload: only the provider's uploaders hand its data in
INGESTING, INGESTED = "INGESTING", "INGESTED"
# A claim still INGESTING after this is an ingest that died (its process killed, its release lost): the next
# hand-in of the package takes it over. Well beyond an upload's ingest, which the upload slots bound.
INGEST_BOUND = timedelta(hours=1)


@dataclass(frozen=True)
class HandInClaim:
    """A hand-in package taken by the center: its id and manifest digest, whose it was, who handed it in, and
    the token of this claim (a claim taken over is another's: the first's ingest no longer touches it)."""

    package_id: str
    manifest_sha256: str
    resource_code: str
    sender: str
    handed_in_by: str
    handed_in_at: datetime
    status: str = INGESTING
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


class HandIns(Protocol):
    """The hand-in packages the center has taken (the exchange's database, unique by id)."""

    async def claim(self, claim: HandInClaim, stale_before: datetime) -> HandInClaim | None:
        """Take the package; None when taken now — or taken over from a claim INGESTING since before
        `stale_before` — else the claim that holds it (left as it is)."""
        ...

    async def ingested(self, claim: HandInClaim, sent: int) -> None: ...

    async def release(self, claim: HandInClaim) -> None:
        """Forget this claim, its ingest failed (its rows refused, the bus away): the package may come again."""
        ...


class HandedInAlready(Conflict):
    def __init__(self, first: HandInClaim) -> None:
        super().__init__("package", f"package {first.package_id} was handed in already: it is not ingested twice")
        self.code = "package.handed_in"
        at = first.handed_in_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        self.message = (
            f"该离线包（编号 {first.package_id}）已于 {at} 交入并导入，不再重复导入；如需更新数据，请重新制作离线包。"
        )


class HandInUnderWay(Conflict):
    def __init__(self, first: HandInClaim) -> None:
        super().__init__("package", f"package {first.package_id} is being ingested: retry later")
        self.code = "package.ingesting"
        at = first.handed_in_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        self.message = f"该离线包（编号 {first.package_id}）已于 {at} 交入，正在导入，请稍后再试。"


@dataclass(frozen=True)
class CenterKeys:
    """The center's Ed25519 key its packages are signed with, and its age key hand-ins are encrypted to."""

    signing: Ed25519PrivateKey
    identity: x25519.Identity

    @property
    def published(self) -> dict[str, str]:
        public = self.signing.public_key()
        return {
            "signing_key_id": key_id(public),
            "signing_public_key_pem": public_pem(public),
            "age_recipient": str(self.identity.to_public()),
            "format": fmt.FORMAT,
        }


@dataclass(frozen=True)
class HandedIn:
    package_id: str
    resource_code: str
    sent: int


@dataclass
class OfflineChannel:
    api: ApiChannel
    recipients: Recipients
    keys: CenterKeys
    department_keys: DepartmentKeys
    uow: UnitOfWork
    uploads: UploadSender
    hand_ins: HandIns
    downloads: Downloads  # a package is made, kept and fetched as a file is; it says what a download says
    days: int  # how long a package may be opened after it is made
    ingest_bound: timedelta = INGEST_BOUND

    async def register_recipient(self, department_code: str, recipient: str, principal: Principal) -> None:
        authorize(principal, RECIPIENT_RULE, Target(department_code=department_code))
        if not fmt.recipient_valid(recipient):
            raise Invalid(
                "recipient", "not an age public key (age1…): make one with `datashare-adapter package keygen`"
            )
        await self.recipients.register(department_code, recipient.strip(), principal.subject, self.api.clock.now())

    async def package(self, call: Call, days: int | None = None) -> Download:
        """Start the job of the package of what the grant named in `call` opens (a download of format PACKAGE:
        followed at GET /downloads/<id>, kept and deleted as files are); its fetch is recorded as the access."""
        assert call.principal is not None  # the route's guard authenticated the caller
        recipient = await self.recipients.recipient(call.principal.department_code)
        if recipient is None:
            await self.api.refuse(call, Operation.PACKAGE, NO_RECIPIENT)
            raise Invalid("recipient", NO_RECIPIENT)
        opened = await self.api.open(call, Operation.PACKAGE, 0, ())
        consent = await self.downloads.covering(opened, call.principal.department_code)
        now = self.api.clock.now()
        terms = fmt.Manifest(
            package_id="",  # the job's id, once it has one
            kind="grant",
            sender=fmt.CENTER,
            addressed_to=call.principal.department_code,
            recipient=recipient,
            resource_code=call.resource_code,
            entry_version=opened.schema.version,
            grant_id=opened.grant.grant_id,
            purpose=opened.grant.purpose,
            items=opened.items,
            row_count=0,
            parts=(),
            created_at=fmt.iso(now),
            expires_at=fmt.iso(now + timedelta(days=days or self.days)),
            notice=notice_of(consent),
        )

        def file_of(download: Download) -> PackageFile:
            manifest = replace(terms, package_id=download.download_id)
            target = Path(self.downloads.files.path(download))
            return PackageFile(manifest, opened, self.api.secret, self.keys.signing, target)

        return await self.downloads.launch(
            opened, call.principal, call.purpose or "", FileFormat.PACKAGE, consent, file_of
        )

    async def hand_in(self, path: Path, principal: Principal, folder: Path) -> HandedIn:
        """Open a department's package (every check first), then ingest its table as an upload."""
        try:
            opened = await asyncio.to_thread(
                fmt.open_package, path, self.keys.identity, fmt.CENTER, self._signer, self.api.clock.now(), folder
            )
        except fmt.PackageRefused as exc:
            raise PackageRefused(exc.code.value, exc.reason) from None
        manifest = opened.manifest
        owner = self.department_keys.key(manifest.signed_by)
        if manifest.kind != "hand-in" or owner is None or owner[0] != manifest.sender or len(manifest.parts) != 1:
            raise PackageRefused(fmt.Refusal.SIGNATURE.value, "not a hand-in signed by its sender department's key")
        provider = (await handlers.resource_state(manifest.resource_code, self.uow)).schema.provider_code
        if manifest.sender != provider:
            reason = (
                f"signed by {manifest.sender}, not by {manifest.resource_code}'s provider: only it hands its data in"
            )
            raise PackageRefused(fmt.Refusal.SIGNATURE.value, reason)
        # before the claim: a hand-in its sender may not make never holds the package against one it may
        authorize(principal, UPLOAD_RULE, Target(department_code=provider))
        digest = hashlib.sha256(manifest.to_json()).hexdigest()
        now = self.api.clock.now()
        claim = HandInClaim(
            manifest.package_id, digest, manifest.resource_code, manifest.sender, principal.subject, now
        )
        first = await self.hand_ins.claim(claim, now - self.ingest_bound)
        if first is not None:
            raise HandedInAlready(first) if first.status == INGESTED else HandInUnderWay(first)
        [part] = manifest.parts
        table = Table(folder / part.name, part.name)
        try:
            sent = await handlers.upload_rows(
                manifest.resource_code, table, list(manifest.deletions), principal, self.uow, self.uploads
            )
        except BaseException:
            await asyncio.shield(self.hand_ins.release(claim))
            raise
        await self.hand_ins.ingested(claim, sent)
        return HandedIn(manifest.package_id, manifest.resource_code, sent)

    def _signer(self, signed_by: str) -> Ed25519PublicKey | None:
        owner = self.department_keys.key(signed_by)
        return owner[1] if owner is not None else None


@dataclass(frozen=True)
class Table:
    """A hand-in's table as the upload path takes it (ports.UploadedTable)."""

    path: Path
    filename: str


class PackageRefused(Invalid):
    """A package that failed a check: its code (package.tampered, package.expired, …) and why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__("package", reason)
        self.code = code


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class PackageFile:
    """A job's rows as an offline package: gzip JSON Lines parts written in a work folder of its own next to
    `target` (a slice at a time: memory stays bounded), then signed, encrypted and framed into `target` under
    a temporary name; the work folder is removed whatever the end."""

    manifest: fmt.Manifest  # its terms; parts and rows are filled in when sealed
    opened: Opened
    secret: bytes
    signing: Ed25519PrivateKey
    target: Path
    subjects: list[str] = field(default_factory=list)

    @property
    def named(self) -> tuple[str, ...]:
        return tuple(self.subjects)

    def open(self) -> PackageWriter:
        """The writer, its work folder next to the target in the download folder (the volume sized for the
        packages, not the small /tmp of a pod), named for the job: the sweep of abandoned parts removes it."""
        folder = self.target.with_name(self.target.name + WORK)
        remove(folder)
        folder.mkdir(mode=0o700)
        return PackageWriter(self, folder)

    def row(self, record: SubjectRecord) -> dict[str, Any]:
        key, opened = record.subject_key, self.opened
        if len(self.subjects) < MAX_BATCH:  # the access names as many as a batch query's does
            self.subjects.append(key)
        return {
            "subject_key": key if opened.keys_in_clear else pseudonym(key, opened.grant.grant_id, self.secret),
            "fields": opened.view(record.fields),
            "source_version": record.source_version,
            "changed_at": record.changed_at,
        }


class PackageWriter:
    """The job's writer (downloads.RowWriter) of a package; every method blocks."""

    def __init__(self, file: PackageFile, folder: Path) -> None:
        self.file = file
        self.folder = folder
        self.parts = fmt.PartWriter(folder)
        self.rows = 0
        self.part = file.target.with_name(file.target.name + ".part")  # as a download's: swept if abandoned

    def write(self, rows: list[Any]) -> None:
        self.parts.add(rows)
        self.rows += len(rows)

    def finish(self) -> tuple[int, str]:
        try:
            manifest = replace(self.file.manifest, row_count=self.rows, parts=self.parts.close())
            fmt.seal(manifest, self.folder, self.file.signing, self.part)
            digest = hashlib.sha256()
            with self.part.open("rb") as sealed:
                while chunk := sealed.read(1 << 20):
                    digest.update(chunk)
            os.replace(self.part, self.file.target)
        finally:
            remove(self.folder)
        return self.file.target.stat().st_size, digest.hexdigest()

    def discard(self) -> None:
        remove(self.folder)
        self.part.unlink(missing_ok=True)
