"""`datashare-adapter package …`: the department's end of offline exchange. `keygen` makes the age key pair
packages to the department are encrypted to (register its public half: PUT /offline/recipients/<code>);
`open` checks a package from the center whole and writes its rows; `verify` only checks; `make` packs a
table of the department's data for the center, signed with the adapter's registered key and encrypted to the
center's age key (both of the center's keys: GET /.well-known/offline-package-keys)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from datashare_adapter import packages as fmt
from datashare_adapter.signing import InvalidKey, key_id, load_private_key_file, load_public_key
from datashare_adapter.sources import SourceError

REFUSED = 4  # the exit code of a package refused


def keygen(path: Path) -> int:
    if path.exists():
        raise SystemExit(f"{path} exists: a new key goes to a new file")
    secret, public = fmt.generate_identity()
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(secret + "\n")
    print(f"# age secret key written to {path}; register the public key below", file=sys.stderr)
    print('# PUT /offline/recipients/<department code> {"recipient": ...}', file=sys.stderr)
    print(public)
    return 0


def center_signer(center_key_pem: str) -> fmt.Signers:
    """Trust exactly the center's published signing key."""
    public = load_public_key(center_key_pem)
    kid = key_id(public)

    def signer(signed_by: str) -> Ed25519PublicKey | None:
        return public if signed_by == kid else None

    return signer


def open_from_center(
    package: Path, identity: str, department: str, center_key_pem: str, out: Path | None, now: datetime | None = None
) -> fmt.Manifest:
    """Check `package` whole; with `out`, write its manifest.json and rows.jsonl there (rows streamed part by
    part). PackageRefused names the first check that failed; nothing is written then."""
    folder = fmt.private_folder(out.parent if out is not None else None)
    try:
        opened = fmt.open_package(
            package,
            fmt.identity_of(identity),
            department,
            center_signer(center_key_pem),
            now or datetime.now(UTC),
            folder,
        )
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "manifest.json").write_bytes(opened.manifest.to_json())
            with (out / "rows.jsonl").open("w", encoding="utf-8") as rows:
                for row in opened.rows():
                    rows.write(json.dumps(row, ensure_ascii=False) + "\n")
        return opened.manifest
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_for_center(
    resource_code: str,
    table: Path,
    department: str,
    key_file: Path,
    center_recipient: str,
    target: Path,
    deletions: tuple[str, ...] = (),
    days: int = 30,
    now: datetime | None = None,
) -> fmt.Manifest:
    """A hand-in: the table (CSV or XLSX, as an upload takes it) signed with the adapter's key, encrypted to
    the center."""
    if table.suffix.lower() not in (".csv", ".xlsx"):
        raise SourceError("the table must be a .csv or .xlsx file with a header row of data item names")
    key = load_private_key_file(key_file)
    folder = fmt.private_folder(target.parent)
    try:
        rows = fmt.count_rows(table)
        part = fmt.table_part(table, folder, rows)
        at = now or datetime.now(UTC)
        manifest = fmt.Manifest(
            package_id=fmt.new_package_id(),
            kind="hand-in",
            sender=department,
            addressed_to=fmt.CENTER,
            recipient=center_recipient.strip(),
            resource_code=resource_code,
            entry_version=0,  # the center checks the rows against the entry in force
            grant_id=None,
            purpose=None,
            items=(),
            row_count=rows,
            parts=(part,),
            created_at=fmt.iso(at),
            expires_at=fmt.iso(at + timedelta(days=days)),
            deletions=deletions,
        )
        return fmt.seal(manifest, folder, key, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def add_commands(commands: argparse._SubParsersAction) -> None:
    package = commands.add_parser("package", help="offline exchange packages (make, open, verify)")
    actions = package.add_subparsers(dest="action", required=True)
    generate = actions.add_parser("keygen", help="make the age key pair packages to the department use")
    generate.add_argument("path", help="where the age secret key goes")
    for name, text in (("open", "check a package from the center and write its rows"), ("verify", "only check")):
        action = actions.add_parser(name, help=text)
        action.add_argument("package")
        action.add_argument("--identity", required=True, help="the department's age secret key file")
        action.add_argument("--department", required=True, help="the department's unified social credit code")
        action.add_argument("--center-key", required=True, help="the center's signing public key (PEM file)")
    actions.choices["open"].add_argument("--out", required=True, help="a folder for manifest.json and rows.jsonl")
    make = actions.add_parser("make", help="pack a table of the department's data for the center")
    make.add_argument("resource", help="resource code, e.g. 101001/000001")
    make.add_argument("--file", required=True, help="a .csv or .xlsx file with a header row of data item names")
    make.add_argument("--department", required=True, help="the department's unified social credit code")
    make.add_argument("--key", required=True, help="the adapter's signing key file (registered with the directory)")
    make.add_argument("--center-recipient", required=True, help="the center's age public key (age1…)")
    make.add_argument("--out", required=True, help="the package file to write")
    make.add_argument("--delete", action="append", default=[], help="a subject key to delete (repeatable)")
    make.add_argument("--days", type=int, default=30, choices=range(1, 366), metavar="1..365")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "keygen":
            return keygen(Path(args.path))
        if args.action == "make":
            manifest = make_for_center(
                args.resource,
                Path(args.file),
                args.department,
                Path(args.key),
                args.center_recipient,
                Path(args.out),
                tuple(args.delete),
                args.days,
            )
        else:
            identity = Path(args.identity).read_text()
            center = Path(args.center_key).read_text()
            out = Path(args.out) if args.action == "open" else None
            manifest = open_from_center(Path(args.package), identity, args.department, center, out)
    except fmt.PackageRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return REFUSED
    except (ValueError, OSError, InvalidKey, SourceError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(asdict(manifest), ensure_ascii=False, indent=2))
    return 0
