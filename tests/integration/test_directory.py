"""The directory and sign-in against the real database and broker."""

import asyncio
import base64
import json
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from common.auth import TokenIssuer, generate_signing_key, load_signing_key
from common.policy import Principal, Role
from services.directory.demo_data import credit_code
from tests.integration.conftest import ServiceProcess, headers_of, read_topic
from tests.tokens import KEY, bearer

IT = credit_code("360800", 8001)
MARKET = credit_code("360800", 8002)
OPERATOR = bearer(IT, Role.IT_OFFICE_OPERATOR, subject="it-operator")


async def start_directory(infra, services, tmp_path) -> ServiceProcess:
    """The directory signing with the tests' key, with the IT office and the market regulator registered."""
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    service = ServiceProcess(
        "directory", infra, tmp_path, mongo_database=f"dir_{uuid.uuid4().hex[:8]}", signing_key=pem
    ).start()
    services.append(service)
    await service.wait_ready()
    async with httpx.AsyncClient(base_url=service.url, headers=OPERATOR) as client:
        for code, name, level in [
            (IT, "吉安市信息化工作办公室", "IT_OFFICE"),
            (MARKET, "吉安市市场监督管理局", "CITY"),
        ]:
            assert (
                await client.post("/departments", json={"code": code, "name": name, "level": level})
            ).status_code == 201
    return service


@pytest.fixture
async def directory(infra, topics, services, tmp_path) -> ServiceProcess:
    return await start_directory(infra, services, tmp_path)


async def sign_in(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await client.post("/token", data=form)


async def register(client: httpx.AsyncClient, person_id: str, roles: list[str], department: str = MARKET) -> str:
    body = {"person_id": person_id, "name": "测试人", "department_code": department, "roles": roles}
    response = await client.post("/people", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return response.json()["secret"]


async def test_people_sign_in_refresh_and_get_slowed_down(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        password = await register(client, "li.registrant", ["catalog_compiler"])
        granted = await sign_in(client, grant_type="password", username="li.registrant", password=password)
        assert granted.status_code == 200
        tokens = granted.json()
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "li.registrant" and claims["dept"] == MARKET and claims["roles"] == ["catalog_compiler"]
        me = await client.get("/people/li.registrant", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200 and "password" not in me.text

        renewed = await sign_in(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert renewed.status_code == 200 and renewed.json()["refresh_token"] != tokens["refresh_token"]
        reused = await sign_in(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert reused.status_code == 401 and "already used" in reused.json()["detail"]

        for _ in range(5):
            wrong = await sign_in(client, grant_type="password", username="li.registrant", password="guess")
            assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid username or password"
        slowed = await sign_in(client, grant_type="password", username="li.registrant", password=password)
        assert slowed.status_code == 429 and "try again" in slowed.json()["detail"]
        await asyncio.sleep(int(slowed.headers["retry-after"]))  # slowed down, not locked out
        granted = await sign_in(client, grant_type="password", username="li.registrant", password=password)
        assert granted.status_code == 200
        unknown = await sign_in(client, grant_type="password", username="nobody", password="x")
        assert unknown.json()["detail"] == "invalid username or password"  # no hint who exists

        # A reset password replaces the old one and ends the refresh tokens.
        reset = await client.post("/people/li.registrant/reset-password", headers=OPERATOR)
        assert reset.status_code == 200 and reset.json()["secret"] != password
        ended = await sign_in(client, grant_type="refresh_token", refresh_token=renewed.json()["refresh_token"])
        assert ended.status_code == 401

        # Deactivation ends sign-in and refresh alike.
        reviewer_password = await register(client, "zhao.reviewer", ["catalog_reviewer"])
        reviewer = await sign_in(client, grant_type="password", username="zhao.reviewer", password=reviewer_password)
        assert (await client.post("/people/zhao.reviewer/deactivate", headers=OPERATOR)).status_code == 204
        refresh = await sign_in(client, grant_type="refresh_token", refresh_token=reviewer.json()["refresh_token"])
        assert refresh.status_code == 401
        again = await sign_in(client, grant_type="password", username="zhao.reviewer", password=reviewer_password)
        assert again.status_code == 401 and again.json()["detail"] == "account deactivated"

        # A deactivation made by mistake is undone by the IT office, with the reason recorded; the person
        # signs in again, without roles until they are given back.
        no_reason = await client.post("/people/zhao.reviewer/reactivate", json={"reason": ""}, headers=OPERATOR)
        assert no_reason.status_code == 422
        undone = await client.post("/people/zhao.reviewer/reactivate", json={"reason": "误停用"}, headers=OPERATOR)
        assert undone.status_code == 200 and undone.json()["roles"] == []
        twice = await client.post("/people/zhao.reviewer/reactivate", json={"reason": "误停用"}, headers=OPERATOR)
        assert twice.status_code == 409
        back = await sign_in(client, grant_type="password", username="zhao.reviewer", password=reviewer_password)
        assert back.status_code == 200, back.text


async def test_machine_credentials_are_shown_once_rotated_and_revoked(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        admin_password = await register(client, "wang.admin", [])
        appointed = await client.post(
            f"/departments/{MARKET}/data-administrator", json={"person_id": "wang.admin"}, headers=OPERATOR
        )
        assert appointed.status_code == 201
        admin = (await sign_in(client, grant_type="password", username="wang.admin", password=admin_password)).json()
        as_admin = {"Authorization": f"Bearer {admin['access_token']}"}
        issued = (
            await client.post("/machines", json={"department_code": MARKET, "kind": "adapter"}, headers=as_admin)
        ).json()
        client_id, secret = issued["login"], issued["secret"]
        token = await sign_in(client, grant_type="client_credentials", client_id=client_id, client_secret=secret)
        claims = jwt.decode(token.json()["access_token"], options={"verify_signature": False})
        assert claims["machine"] == "adapter" and claims["dept"] == MARKET
        assert token.json()["refresh_token"] is None  # client credentials get no refresh token

        rotated = (await client.post(f"/machines/{client_id}/rotate", headers=as_admin)).json()["secret"]
        old = await sign_in(client, grant_type="client_credentials", client_id=client_id, client_secret=secret)
        assert old.status_code == 401 and old.json()["detail"] == "invalid client credentials"
        new = await sign_in(client, grant_type="client_credentials", client_id=client_id, client_secret=rotated)
        assert new.status_code == 200

        revoked = await client.post(
            f"/machines/{client_id}/revoke", json={"reason": "adapter retired"}, headers=as_admin
        )
        assert revoked.status_code == 204
        after = await sign_in(client, grant_type="client_credentials", client_id=client_id, client_secret=rotated)
        assert after.status_code == 401 and after.json()["detail"] == "client credentials revoked"


async def test_data_administrators_are_registered_with_their_history(infra, directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url, headers=OPERATOR) as client:
        for person in ("first.admin", "second.admin"):
            await register(client, person, [])
        for person in ("first.admin", "second.admin"):
            response = await client.post(f"/departments/{MARKET}/data-administrator", json={"person_id": person})
            assert response.status_code == 201, response.text
        history = (await client.get(f"/departments/{MARKET}/data-administrators")).json()
        assert [(h["person_id"], h["replaces_person_id"], h["registered_by"]) for h in history] == [
            ("first.admin", None, "it-operator"),
            ("second.admin", "first.admin", "it-operator"),
        ]
        # another department's compiler learns who they are, by name, not their logins (half of a sign-in)
        compiler = bearer(IT, Role.CATALOG_COMPILER, subject="it-compiler")
        seen = (await client.get(f"/departments/{MARKET}/data-administrators", headers=compiler)).json()
        assert [(h["person_name"], h["replaces_person_name"]) for h in seen] == [("测试人", None), ("测试人", "测试人")]
        assert {h[field] for h in seen for field in ("person_id", "replaces_person_id", "registered_by")} == {None}
        first = (await client.get("/people/first.admin")).json()
        assert "data_administrator" not in first["roles"]
        assert "data_administrator" in (await client.get("/people/second.admin")).json()["roles"]
        # The role comes only by appointment, and an IT-office role only to the IT office's staff.
        sneaky = await client.put("/people/first.admin/roles", json={"roles": ["data_administrator"]})
        assert sneaky.status_code == 422
        outsider = await client.put("/people/first.admin/roles", json={"roles": ["it_office_operator"]})
        assert outsider.status_code == 422 and "IT office" in outsider.json()["detail"]
        renamed = await client.put(f"/departments/{MARKET}", json={"name": "吉安市市场监督管理局（知识产权局）"})
        assert renamed.status_code == 200 and renamed.json()["name"].endswith("（知识产权局）")
    wanted = {"DepartmentRegistered", "PersonRolesChanged", "DataAdministratorAppointed", "DepartmentChanged"}
    keys = (MARKET.encode(), b"first.admin", b"second.admin")
    for event_type in sorted(wanted):  # other tests write events under the same keys: look for each type
        found = await read_topic(
            infra.bootstrap,
            "directory.events",
            1,
            where=lambda r, t=event_type: r.key in keys and headers_of(r)["event_type"] == t,
        )
        assert found, f"no {event_type} on directory.events"


async def test_bad_tokens_are_refused_with_the_reason(directory) -> None:
    other_key = load_signing_key(generate_signing_key())
    principal = Principal("it-operator", IT, frozenset({Role.IT_OFFICE_OPERATOR}))
    expired = TokenIssuer(KEY, "jian-datashare", "jian-datashare", ttl_seconds=-10).issue(principal)[0]
    foreign = TokenIssuer(other_key, "jian-datashare", "jian-datashare").issue(principal)[0]
    good = TokenIssuer(KEY, "jian-datashare", "jian-datashare").issue(principal)[0]
    header, _payload, signature = good.split(".")
    forged_claims = jwt.decode(good, options={"verify_signature": False}) | {"dept": MARKET}
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    forged = f"{header}.{forged_payload}.{signature}"
    other_audience = TokenIssuer(KEY, "jian-datashare", "someone-else").issue(principal)[0]
    cases = {
        expired: "token expired",
        foreign: "token signed by an unknown key",
        forged: "token signature does not verify",
        other_audience: "token is for another audience",
        "not-a-jwt": "malformed token",
    }
    async with httpx.AsyncClient(base_url=directory.url) as client:
        for token, reason in cases.items():
            response = await client.get("/departments", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401 and response.json()["detail"] == reason, response.text
        assert (await client.get("/departments")).json()["detail"] == "missing bearer token"
        assert (await client.get("/departments", headers={"Authorization": f"Bearer {good}"})).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'datashare_auth_failures_total{kind="unauthenticated"}' in metrics


async def test_tokens_stop_working_when_their_credentials_are_revoked_or_roles_change(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        issued = (
            await client.post(
                "/machines", json={"department_code": MARKET, "kind": "consumer_system"}, headers=OPERATOR
            )
        ).json()
        granted = await sign_in(
            client, grant_type="client_credentials", client_id=issued["login"], client_secret=issued["secret"]
        )
        machine = {"Authorization": f"Bearer {granted.json()['access_token']}"}
        password = await register(client, "sun.compiler", ["catalog_compiler"])
        person_token = (
            await sign_in(client, grant_type="password", username="sun.compiler", password=password)
        ).json()["access_token"]
        person = {"Authorization": f"Bearer {person_token}"}
        assert (await client.get("/departments", headers=machine)).status_code == 200
        assert (await client.get("/departments", headers=person)).status_code == 200

        await asyncio.sleep(1.1)  # tokens carry whole seconds
        await client.post(f"/machines/{issued['login']}/revoke", json={"reason": "leaked"}, headers=OPERATOR)
        await client.put("/people/sun.compiler/roles", json={"roles": ["catalog_reviewer"]}, headers=OPERATOR)
        for headers in (machine, person):
            for _ in range(50):
                response = await client.get("/departments", headers=headers)
                if response.status_code == 401:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 401 and "sign in again" in response.json()["detail"]
        fresh = (await sign_in(client, grant_type="password", username="sun.compiler", password=password)).json()
        renewed = await client.get("/departments", headers={"Authorization": f"Bearer {fresh['access_token']}"})
        assert renewed.status_code == 200
