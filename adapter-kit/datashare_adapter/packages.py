"""Offline exchange packages (Art. 16): data carried on a medium between the center and a department whose
systems are not connected, in one file that only the addressed party can open and that shows any change.

The file, as written:

    DATASHARE-PACKAGE/1\\n
    {"package_id": ..., "addressed_to": ..., "recipient": ..., "body_bytes": N}\\n   (the frame, in clear)
    N bytes: an age file (age-encryption.org/v1) to `recipient`, holding a tar archive of
        manifest.json   what the package holds: resource, entry version, grant, items, rows, each part's
                        SHA-256, created and expires at, addressed to, signed by
        manifest.sig    the Ed25519 signature of manifest.json by its sender (the center, or the department)
        part-00001...   the data: gzip JSON Lines from the center, the department's table (CSV/XLSX) to it

The frame says whom the package is for and how long its body is, so a package for another department and a
cut-off copy are told apart from a changed one before any decryption: age authenticates every 64 KiB of the
body, and the signed manifest names each part's digest. Opening checks all of it — frame, decryption,
signature, address, expiry, every part's digest — before a single row is read.

Everything streams: parts are written to files and digested while written (`PART_ROWS` rows each), age
encrypts and decrypts file to file in 64 KiB chunks, and opening copies each part out of the archive while
hashing it. Memory stays at the rows a caller hands over at once plus a few chunks, whatever the row count.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import pyrage
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyrage import x25519

from datashare_adapter.signing import key_id
from datashare_adapter.sources import iter_table

MAGIC = b"DATASHARE-PACKAGE/1\n"
FORMAT = "datashare-package/1"
CENTER = "CENTER"  # whom a department's hand-in is addressed to
PART_ROWS = 100_000  # rows per part of a center's package
FRAME_BYTES = 4096  # the frame line at most
MANIFEST_BYTES = 1 << 20  # manifest.json at most
CHUNK = 1 << 16
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
INTERNAL_USE = "仅限政务部门内部使用，未经提供部门同意不得对外公开（《吉安市政务数据共享管理暂行办法》第十八条）"


class Refusal(StrEnum):
    """Why a package is not opened: each its own code, so an operator knows what to do."""

    MALFORMED = "package.malformed"  # not a package of this format at all
    TRUNCATED = "package.truncated"  # cut off: copy it again
    TAMPERED = "package.tampered"  # changed after it was made (bytes flipped, added, or the frame altered)
    SIGNATURE = "package.signature"  # not signed by the sender it names, or by no key the opener trusts
    DIGEST = "package.digest"  # a part does not match the digest its manifest states
    EXPIRED = "package.expired"  # past its expiry: ask for a new one
    MISADDRESSED = "package.misaddressed"  # for another department (or another key of this one)


class PackageRefused(ValueError):
    def __init__(self, code: Refusal, reason: str) -> None:
        super().__init__(f"{code.value}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Part:
    name: str
    rows: int
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a package holds, signed by its sender. `sender` is CENTER or a department's code; `addressed_to`
    the other side; `signed_by` the key id of the sender's Ed25519 key."""

    package_id: str
    kind: str  # "grant": the center's, under a grant; "hand-in": a department's data for the center
    sender: str
    addressed_to: str
    recipient: str  # the age public key the package is encrypted to
    resource_code: str
    entry_version: int
    grant_id: str | None
    purpose: str | None
    items: tuple[str, ...]
    row_count: int
    parts: tuple[Part, ...]
    created_at: str  # ISO 8601, UTC
    expires_at: str
    signed_by: str = ""
    notice: str = INTERNAL_USE
    deletions: tuple[str, ...] = ()  # a hand-in's subject keys to delete
    format: str = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        raw["parts"] = tuple(Part(**p) for p in raw["parts"])
        raw["items"], raw["deletions"] = tuple(raw["items"]), tuple(raw.get("deletions") or ())
        return cls(**raw)

    @property
    def expires(self) -> datetime:
        return datetime.fromisoformat(self.expires_at)


class _Digesting(io.RawIOBase):
    """A file that digests and counts what is written to it."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)


@dataclass
class PartWriter:
    """Rows into gzip JSON Lines parts in `folder`, each digested while written; `add` as often as needed."""

    folder: Path
    part_rows: int = PART_ROWS
    parts: list[Part] = field(default_factory=list)
    _file: IO[bytes] | None = None
    _digesting: _Digesting | None = None
    _zipped: gzip.GzipFile | None = None
    _rows: int = 0

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if self._zipped is None:
                self._start()
            assert self._zipped is not None
            self._zipped.write(json.dumps(row, ensure_ascii=False, default=str).encode() + b"\n")
            self._rows += 1
            if self._rows >= self.part_rows:
                self._finish()

    def close(self) -> tuple[Part, ...]:
        if self._zipped is not None:
            self._finish()
        return tuple(self.parts)

    def _start(self) -> None:
        name = f"part-{len(self.parts) + 1:05d}.jsonl.gz"
        self._file = (self.folder / name).open("wb")
        self._digesting = _Digesting(self._file)
        self._zipped = gzip.GzipFile(filename="", mode="wb", fileobj=self._digesting, mtime=0)  # type: ignore[arg-type]
        self._rows = 0

    def _finish(self) -> None:
        assert self._zipped is not None and self._digesting is not None and self._file is not None
        self._zipped.close()
        self._file.close()
        name = Path(self._file.name).name
        self.parts.append(Part(name, self._rows, self._digesting.size, self._digesting.sha.hexdigest()))
        self._zipped = self._digesting = self._file = None


def table_part(source: Path, folder: Path, rows: int) -> Part:
    """A department's table (CSV or XLSX, as an upload takes it) as the one part of a hand-in."""
    name = "table" + source.suffix.lower()
    with source.open("rb") as src, (folder / name).open("wb") as out:
        digesting = _Digesting(out)
        shutil.copyfileobj(src, digesting, CHUNK)  # type: ignore[misc]
    return Part(name, rows, digesting.size, digesting.sha.hexdigest())


def new_package_id() -> str:
    return uuid.uuid4().hex


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def seal(manifest: Manifest, folder: Path, key: Ed25519PrivateKey, target: Path) -> Manifest:
    """Sign `manifest` (its parts are files in `folder`), archive, encrypt to its recipient and frame it into
    `target`; the temporary archive and ciphertext are removed. Returns the manifest as signed."""
    manifest = replace(manifest, signed_by=key_id(key.public_key()))
    data = manifest.to_json()
    recipient = _recipient(manifest.recipient)
    with tempfile.TemporaryDirectory(dir=folder) as work:
        archive, body = Path(work) / "package.tar", Path(work) / "package.age"
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, io.BytesIO(data), len(data))
            signature = key.sign(data)
            _add(tar, SIGNATURE, io.BytesIO(signature), len(signature))
            for part in manifest.parts:
                with (folder / part.name).open("rb") as stream:
                    _add(tar, part.name, stream, part.size)
        pyrage.encrypt_file(str(archive), str(body), [recipient])
        archive.unlink()
        frame = {
            "package_id": manifest.package_id,
            "addressed_to": manifest.addressed_to,
            "recipient": manifest.recipient,
            "body_bytes": body.stat().st_size,
        }
        with target.open("wb") as out, body.open("rb") as encrypted:
            out.write(MAGIC + json.dumps(frame, sort_keys=True).encode() + b"\n")
            shutil.copyfileobj(encrypted, out, CHUNK)
    return manifest


def _add(tar: tarfile.TarFile, name: str, stream: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o600
    tar.addfile(info, stream)


def _recipient(text: str) -> x25519.Recipient:
    try:
        return x25519.Recipient.from_str(text.strip())
    except Exception:
        raise ValueError(f"not an age public key (age1…): {text[:80]!r}") from None


def identity_of(text: str) -> x25519.Identity:
    try:
        return x25519.Identity.from_str(text.strip())
    except Exception:
        raise ValueError("not an age secret key (AGE-SECRET-KEY-1…)") from None


def generate_identity() -> tuple[str, str]:
    """A new age key pair: (secret key, public key to register)."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def recipient_valid(text: str) -> bool:
    try:
        _recipient(text)
    except ValueError:
        return False
    return True


# -- opening ------------------------------------------------------------------------------------------------


Signers = Callable[[str], Ed25519PublicKey | None]  # key id → the trusted public key, None: not trusted


@dataclass(frozen=True)
class Frame:
    package_id: str
    addressed_to: str
    recipient: str
    body_bytes: int
    offset: int  # where the body starts in the file


@dataclass(frozen=True)
class OpenedPackage:
    """A package whose every check passed; its parts are files in `folder` (the caller removes it)."""

    manifest: Manifest
    folder: Path

    def part_paths(self) -> list[Path]:
        return [self.folder / p.name for p in self.manifest.parts]

    def rows(self) -> Iterator[dict[str, Any]]:
        """The rows of a center's package, part after part (never all at once)."""
        for path in self.part_paths():
            with gzip.open(path, "rt", encoding="utf-8") as lines:
                for line in lines:
                    yield json.loads(line)


def read_frame(path: Path) -> Frame:
    """The frame, and the file's length against it: MALFORMED, TRUNCATED or TAMPERED before any decryption."""
    with path.open("rb") as stream:
        if stream.read(len(MAGIC)) != MAGIC:
            raise PackageRefused(Refusal.MALFORMED, "not an offline exchange package (it does not start as one)")
        line = stream.readline(FRAME_BYTES)
        offset = stream.tell()
    try:
        raw = json.loads(line)
        frame = Frame(
            str(raw["package_id"]), str(raw["addressed_to"]), str(raw["recipient"]), int(raw["body_bytes"]), offset
        )
    except (ValueError, KeyError, TypeError):
        if not line.endswith(b"\n") and len(line) < FRAME_BYTES:
            raise PackageRefused(Refusal.TRUNCATED, "the package ends within its frame: it was cut off") from None
        raise PackageRefused(Refusal.TAMPERED, "the package's frame was changed: it is not as it was made") from None
    held = path.stat().st_size - offset
    if held < frame.body_bytes:
        missing = frame.body_bytes - held
        raise PackageRefused(
            Refusal.TRUNCATED, f"the package lacks its last {missing} bytes: it was cut off (copy it again)"
        )
    if held > frame.body_bytes:
        raise PackageRefused(Refusal.TAMPERED, f"{held - frame.body_bytes} bytes were added to the package")
    return frame


def open_package(
    path: Path,
    identity: x25519.Identity,
    me: str,
    signers: Signers,
    now: datetime,
    folder: Path,
) -> OpenedPackage:
    """Every check, then the parts in `folder`: the frame, that it is addressed to `me` and to `identity`,
    that it decrypts whole, the manifest's signature by a key `signers` trusts, the address and expiry it
    states, and each part's digest. Raises PackageRefused with the first check that fails."""
    frame = read_frame(path)
    mine = str(identity.to_public())
    if frame.addressed_to != me:
        raise PackageRefused(Refusal.MISADDRESSED, f"the package is addressed to {frame.addressed_to}, not to {me}")
    if frame.recipient != mine:
        raise PackageRefused(
            Refusal.MISADDRESSED,
            f"the package is encrypted to {frame.recipient}, not to this key ({mine}): open it with the key "
            "registered when it was made",
        )
    with tempfile.TemporaryDirectory(dir=folder) as work:
        archive = Path(work) / "package.tar"
        with path.open("rb") as stream, archive.open("wb") as out:
            stream.seek(frame.offset)
            try:
                pyrage.decrypt_io(stream, out, [identity])  # type: ignore[arg-type]
            except (pyrage.DecryptError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise  # the disk's, not the package's (age reports a changed chunk as an OSError without one)
                raise PackageRefused(
                    Refusal.TAMPERED, f"the package does not decrypt whole ({exc}): it was changed after it was made"
                ) from None
        manifest = _unpack(archive, frame, me, signers, now, folder)
    return OpenedPackage(manifest, folder)


def _unpack(archive: Path, frame: Frame, me: str, signers: Signers, now: datetime, folder: Path) -> Manifest:
    with tarfile.open(archive, "r|") as tar:
        members = iter(tar)
        data = _member(tar, next(members, None), MANIFEST, MANIFEST_BYTES)
        signature = _member(tar, next(members, None), SIGNATURE, 1024)
        manifest = _checked(data, signature, frame, me, signers, now)
        expected = {p.name: p for p in manifest.parts}
        seen = set()
        for member in members:
            part = expected.get(member.name)
            if part is None or not member.isfile() or member.name in seen:
                raise PackageRefused(Refusal.TAMPERED, f"the package holds {member.name!r}, which its manifest omits")
            seen.add(member.name)
            _extract(tar, member, part, folder)
        missing = [name for name in expected if name not in seen]
        if missing:
            raise PackageRefused(Refusal.DIGEST, f"parts named in the manifest are missing: {', '.join(missing)}")
    return manifest


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo | None, name: str, most: int) -> bytes:
    if member is None or member.name != name or not member.isfile() or member.size > most:
        raise PackageRefused(Refusal.MALFORMED, f"the package does not begin with its {name}")
    stream = tar.extractfile(member)
    assert stream is not None
    return stream.read()


def _checked(data: bytes, signature: bytes, frame: Frame, me: str, signers: Signers, now: datetime) -> Manifest:
    try:
        manifest = Manifest.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise PackageRefused(Refusal.MALFORMED, f"the manifest is unreadable: {exc}") from None
    public = signers(manifest.signed_by)
    if public is None:
        raise PackageRefused(
            Refusal.SIGNATURE, f"signed by key {manifest.signed_by!r}, which is not {manifest.sender}'s trusted key"
        )
    try:
        public.verify(signature, data)
    except InvalidSignature:
        raise PackageRefused(
            Refusal.SIGNATURE, f"the manifest's signature does not verify with key {manifest.signed_by}"
        ) from None
    if manifest.addressed_to != me or manifest.recipient != frame.recipient:
        raise PackageRefused(Refusal.MISADDRESSED, f"the manifest addresses the package to {manifest.addressed_to}")
    if manifest.package_id != frame.package_id or manifest.addressed_to != frame.addressed_to:
        raise PackageRefused(Refusal.TAMPERED, "the package's frame does not match its signed manifest")
    if manifest.expires <= now:
        raise PackageRefused(
            Refusal.EXPIRED, f"the package expired at {manifest.expires_at}: ask its sender for a new one"
        )
    return manifest


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, part: Part, folder: Path) -> None:
    stream = tar.extractfile(member)
    assert stream is not None
    target = folder / part.name
    with target.open("wb") as out:
        digesting = _Digesting(out)
        shutil.copyfileobj(stream, digesting, CHUNK)  # type: ignore[misc]
    if digesting.size != part.size or digesting.sha.hexdigest() != part.sha256:
        target.unlink()
        raise PackageRefused(Refusal.DIGEST, f"part {part.name} does not match the SHA-256 its manifest states")


def count_rows(path: Path) -> int:
    """Rows of a CSV or XLSX table below its header row, read as an upload reads them."""
    with path.open("rb") as stream:
        return sum(1 for _ in iter_table(stream, path.name))


def private_folder(parent: Path | None = None) -> Path:
    """A folder readable by its owner only, for a package's parts."""
    folder = Path(tempfile.mkdtemp(prefix="datashare-package-", dir=parent))
    os.chmod(folder, 0o700)
    return folder
