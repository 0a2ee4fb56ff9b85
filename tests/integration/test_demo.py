"""`make demo` loads a realistic directory; the README's sign-ins work with what it prints."""

import csv
import os
import subprocess
import sys
import uuid

import httpx
from cryptography.hazmat.primitives import serialization

from common.identifiers import validate_credit_code
from devstack.processes import ROOT
from tests.integration.conftest import ServiceProcess
from tests.tokens import KEY


async def test_demo_directory_lets_every_kind_of_user_sign_in(infra, topics, services, tmp_path) -> None:
    database = f"demo_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DIRECTORY_MONGO_URI": infra.mongo_uri,
        "DIRECTORY_MONGO_DATABASE": database,
        "DIRECTORY_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
    }
    credentials = tmp_path / "demo-credentials.tsv"
    result = subprocess.run(
        [sys.executable, "-m", "services.directory.cli", "demo", "--credentials", str(credentials)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(credentials.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
    secrets = {login: secret for login, secret, _ in rows}

    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    directory = ServiceProcess("directory", infra, tmp_path, mongo_database=database, signing_key=pem).start()
    services.append(directory)
    await directory.wait_ready()
    async with httpx.AsyncClient(base_url=directory.url) as client:
        tokens = {}
        for login in ("scjgj-compiler", "scjgj-reviewer", "scjgj-admin", "xxb-operator"):
            response = await client.post(
                "/token", data={"grant_type": "password", "username": login, "password": secrets[login]}
            )
            assert response.status_code == 200, response.text
            tokens[login] = response.json()["access_token"]
        adapter = next(login for login in secrets if login.startswith("adapter-"))
        response = await client.post(
            "/token", data={"grant_type": "client_credentials", "client_id": adapter, "client_secret": secrets[adapter]}
        )
        assert response.status_code == 200, response.text
        # its signing key was made and registered by the market regulator's data administrator
        assert (tmp_path / "adapter-keys" / f"{adapter}.pem").stat().st_mode & 0o077 == 0
        keys = await client.get(
            f"/machines/{adapter}/keys", headers={"Authorization": f"Bearer {tokens['scjgj-admin']}"}
        )
        assert [k["registered_by"] for k in keys.json()] == ["scjgj-admin"], keys.text

        headers = {"Authorization": f"Bearer {tokens['xxb-operator']}"}
        departments = (await client.get("/departments", headers=headers)).json()
    levels = [d["level"] for d in departments]
    assert levels.count("CITY") >= 21 and levels.count("COUNTY") == 13 and levels.count("ZONE") == 2
    assert {"IT_OFFICE", "LEADERSHIP_GROUP"} <= set(levels)
    assert all(validate_credit_code(d["code"]) == d["code"] for d in departments)
    assert "吉安市市场监督管理局" in {d["name"] for d in departments}
