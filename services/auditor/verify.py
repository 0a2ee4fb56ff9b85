"""Check a range of the access trail with nothing but the auditor's public key: no database, no service.

    curl -H "Authorization: Bearer $TOKEN" "$AUDITOR/trail/proof?first=1000&last=2000" > proof.jsonl
    curl "$AUDITOR/.well-known/trail-checkpoint-key" | jq -r .public_key_pem > key.pem
    python -m services.auditor.verify --public-key key.pem proof.jsonl      # exit status 0: intact

The public key should come from where the IT office publishes it, not only from the service whose trail is
checked. In Python: `verify_file(path, public_key_pem)` returns the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.auditor.adapters.checkpoints import PublicKeyCheck
from services.auditor.domain.trail import ChainReport, verify_proof


def verify_file(path: Path, public_key_pem: str | bytes) -> ChainReport:
    """The report on a proof file (read line by line: memory stays small however long the range)."""
    key = PublicKeyCheck.from_pem(public_key_pem)
    with path.open(encoding="utf-8") as lines:
        return verify_proof(lines, key.valid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.auditor.verify", description=__doc__.split("\n")[0])
    parser.add_argument("--public-key", required=True, type=Path, help="the auditor's Ed25519 public key (PEM)")
    parser.add_argument("proof", type=Path, help="a file from GET /trail/proof")
    args = parser.parse_args(argv)
    report = verify_file(args.proof, args.public_key.read_bytes())
    print(json.dumps(report.__dict__, ensure_ascii=False, indent=2))
    return 0 if report.intact else 1


if __name__ == "__main__":
    sys.exit(main())
