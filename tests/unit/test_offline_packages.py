"""The offline package format (datashare_adapter.packages) without a service: every refusal has its own code,
and a large package streams through in bounded memory."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from datashare_adapter import packages as fmt
from datashare_adapter.signing import generate_key, key_id

from services.exchange.sharing.adapters.download_files import FolderFiles
from services.exchange.sharing.downloads import Download
from services.exchange.sharing.packages import PackageFile
from tests.unit.test_downloads import Files, Many, Store, downloads_of

KEY = generate_key()
SECRET, PUBLIC = fmt.generate_identity()
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def trusted(signed_by: str):
    return KEY.public_key() if signed_by == key_id(KEY.public_key()) else None


def manifest(parts: tuple[fmt.Part, ...], rows: int, **changes) -> fmt.Manifest:
    base = fmt.Manifest(
        package_id=fmt.new_package_id(),
        kind="grant",
        sender=fmt.CENTER,
        addressed_to="DEPT",
        recipient=PUBLIC,
        resource_code="101001/000001",
        entry_version=3,
        grant_id="g-1",
        purpose="核验",
        items=("企业名称",),
        row_count=rows,
        parts=parts,
        created_at=fmt.iso(NOW),
        expires_at=fmt.iso(NOW + timedelta(days=1)),
    )
    return replace(base, **changes)


def made(folder: Path, rows: int = 5, key=KEY, **changes) -> Path:
    writer = fmt.PartWriter(folder, part_rows=2)
    writer.add({"subject_key": f"k{i}", "fields": {"企业名称": f"公司{i}"}} for i in range(rows))
    target = folder / "p.dspkg"
    fmt.seal(manifest(writer.close(), rows, **changes), folder, key, target)
    return target


def code_of(path: Path, tmp_path: Path, secret: str = SECRET, me: str = "DEPT", now: datetime = NOW) -> str:
    with pytest.raises(fmt.PackageRefused) as refused:
        fmt.open_package(path, fmt.identity_of(secret), me, trusted, now, fmt.private_folder(tmp_path))
    return refused.value.code.value


def test_a_package_opens_whole_for_its_addressee(tmp_path: Path) -> None:
    opened = fmt.open_package(
        made(tmp_path), fmt.identity_of(SECRET), "DEPT", trusted, NOW, fmt.private_folder(tmp_path)
    )
    assert [r["subject_key"] for r in opened.rows()] == ["k0", "k1", "k2", "k3", "k4"]
    assert len(opened.manifest.parts) == 3 and opened.manifest.signed_by == key_id(KEY.public_key())


def test_each_refusal_has_its_own_code(tmp_path: Path) -> None:
    path = made(tmp_path)
    data = path.read_bytes()
    variants = {
        "flipped": data[:-200] + bytes([data[-200] ^ 1]) + data[-199:],
        "cut": data[:-1],
        "longer": data + b"\0",
        "junk": b"PK\x03\x04 not a package",
    }
    for name, content in variants.items():
        (tmp_path / name).write_bytes(content)
    assert code_of(tmp_path / "flipped", tmp_path) == "package.tampered"
    assert code_of(tmp_path / "cut", tmp_path) == "package.truncated"
    assert code_of(tmp_path / "longer", tmp_path) == "package.tampered"
    assert code_of(tmp_path / "junk", tmp_path) == "package.malformed"
    assert code_of(path, tmp_path, now=NOW + timedelta(days=1)) == "package.expired"
    assert code_of(path, tmp_path, me="OTHER") == "package.misaddressed"
    other_secret, _ = fmt.generate_identity()
    assert code_of(path, tmp_path, secret=other_secret) == "package.misaddressed"  # another key of the same name


def test_a_package_signed_by_another_key_or_with_a_wrong_digest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    forged = made(tmp_path / "a", key=generate_key())  # anyone can encrypt to a public key: not sign as the center
    assert code_of(forged, tmp_path) == "package.signature"
    folder = tmp_path / "b"
    writer = fmt.PartWriter(folder)
    writer.add([{"subject_key": "k", "fields": {}}])
    [part] = writer.close()
    target = folder / "p.dspkg"
    fmt.seal(manifest((replace(part, sha256="0" * 64),), 1), folder, KEY, target)
    assert code_of(target, tmp_path) == "package.digest"


def test_a_large_package_streams_in_bounded_memory(tmp_path: Path) -> None:
    """20k rows written and read back a few at a time: the memory traced stays well below the rows' size (the
    bound does not grow with the row count: a writer holds one slice, an opener one line)."""
    rows = 20_000
    tracemalloc.start()
    try:
        writer = fmt.PartWriter(tmp_path, part_rows=6_000)
        for start in range(0, rows, 1000):
            writer.add(
                {"subject_key": f"k{i:08d}", "fields": {"企业名称": f"吉安某某有限公司{i}"}}
                for i in range(start, start + 1000)
            )
        target = tmp_path / "big.dspkg"
        fmt.seal(manifest(writer.close(), rows), tmp_path, KEY, target)
        opened = fmt.open_package(target, fmt.identity_of(SECRET), "DEPT", trusted, NOW, fmt.private_folder(tmp_path))
        assert sum(1 for _ in opened.rows()) == rows
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(opened.manifest.parts) == 4
    assert peak < 1024 * 1024, peak  # the rows at once take 10 MB as Python objects


def test_production_needs_the_centers_package_keys_where_packages_are_made() -> None:
    from pydantic import ValidationError

    from common.auth import generate_signing_key
    from services.exchange.settings import ExchangeSettings

    base = {
        "environment": "production",
        "mongo_uri": "mongodb://a,b,c/?replicaSet=rs0",
        "signing_key": generate_signing_key(),
        "subject_secret": "x" * 40,
        "hosted_credential_key": "y" * 40,
    }
    with pytest.raises(ValidationError, match="EXCHANGE_PACKAGE_SIGNING_KEY"):
        ExchangeSettings(**base)
    assert ExchangeSettings(**base, role="ingest").package_signing_key is None  # ingestion makes no packages
    keys = {"package_signing_key": generate_signing_key(), "package_age_identity": fmt.generate_identity()[0]}
    assert ExchangeSettings(**base, **keys).package_days == 30


def _package_file(target: Path) -> PackageFile:
    return PackageFile(manifest((), 0), None, b"s" * 32, KEY, target)  # type: ignore[arg-type]


ROWS = [{"subject_key": f"k{i}", "fields": {"企业名称": f"公司{i}"}} for i in range(3)]


def test_a_package_job_works_in_the_download_folder_and_leaves_no_work_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package is built next to its file in the download folder (the volume sized for packages, not the
    pod's small /tmp), and its work folder goes whatever the end."""
    made = _package_file(tmp_path / "d-1.dspkg").open()
    assert made.folder.parent == tmp_path and made.folder.name == "d-1.dspkg.work" and made.folder.is_dir()
    made.write(ROWS)
    assert list(made.folder.iterdir())  # its parts are there, not in /tmp
    made.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d-1.dspkg"]

    discarded = _package_file(tmp_path / "d-2.dspkg").open()  # a job that failed while writing
    discarded.write(ROWS)
    discarded.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d-1.dspkg"]

    def broken_seal(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fmt, "seal", broken_seal)
    failing = _package_file(tmp_path / "d-3.dspkg").open()  # a job that failed while sealing
    failing.write(ROWS)
    with pytest.raises(OSError):
        failing.finish()
    failing.discard()  # as the job does on a failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d-1.dspkg"]


async def test_the_sweep_of_abandoned_parts_removes_a_killed_package_jobs_work_folder(tmp_path: Path) -> None:
    killed = _package_file(tmp_path / "d-4.dspkg").open()  # its process killed mid-job: nothing cleaned up
    killed.write(ROWS)
    running = _package_file(tmp_path / "d-5.dspkg").open()  # still running here: left alone
    files = FolderFiles(tmp_path)
    assert sorted(files.parts(datetime.now(UTC) + timedelta(seconds=5))) == ["d-4.dspkg.work", "d-5.dspkg.work"]

    class Gone(Store):
        async def abandoned(self, before: datetime) -> list[Download]:
            return []

    fakes = Many(grants={}, schemas={})
    sweeping = replace(downloads_of(fakes, Gone(), Files(fakes)), files=files, store=Gone(), held={"d-5"})
    await sweeping._end_abandoned(datetime.now(UTC) + timedelta(seconds=5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d-5.dspkg.work"] and running.folder.is_dir()
