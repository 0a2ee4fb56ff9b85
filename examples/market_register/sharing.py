"""`make demo`, third part: the administrative approval bureau (行政审批局) applies for the market regulator's
register, the regulator's data administrator approves it narrowed, and the bureau's consumer system reads a
real enterprise through the API channel — printed so that a newcomer can do the same with curl."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx

from common.clock import today_in_china

PURPOSE = "企业开办审批核验"
ASKED = ["统一社会信用代码", "企业名称", "法定代表人", "注册资本", "成立日期", "登记状态"]
GRANTED = ["统一社会信用代码", "企业名称", "法定代表人", "登记状态"]  # 法定代表人 is sensitive: served masked
REGION = "360800"  # enterprises registered by the city itself (市本级), of the city's 3608 applied for
REASONS = "审批核验只需名称、法定代表人和登记状态；限市本级登记的企业；期限半年，到期可再申请"


def consumer_system(people: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """The approval bureau's consumer system from the demo credentials: (client_id, secret)."""
    for login, (secret, what) in people.items():
        if what.startswith("consumer_system of 吉安市行政审批局"):
            return login, secret
    raise SystemExit("no consumer system of 吉安市行政审批局 in the demo credentials")


def a_subject(source: Path) -> str:
    """A real enterprise of the register to query (every demo enterprise is registered at 360800)."""
    with sqlite3.connect(source) as db:
        (key,) = db.execute("SELECT 统一社会信用代码 FROM enterprise ORDER BY rowid LIMIT 1").fetchone()
    return str(key)


async def existing_grant(client: httpx.AsyncClient, exchange: str, bureau: dict, code: str) -> dict | None:
    answer = await client.get(f"{exchange}/grants", params={"as": "consumer", "status": "ACTIVE"}, headers=bureau)
    answer.raise_for_status()
    return next((g for g in answer.json() if g["resource_code"] == code and g["purpose"] == PURPOSE), None)


async def approved_grant(client: httpx.AsyncClient, exchange: str, bureau: dict, market: dict, code: str, system: str):
    """The bureau's grant on the register: found if an earlier run made it, else applied for and approved."""
    found = await existing_grant(client, exchange, bureau, code)
    if found is not None:
        return found
    today = today_in_china()
    application = {
        "resource_code": code,
        "items": ASKED,
        "regions": ["3608"],
        "purpose": PURPOSE,
        "channels": ["API"],
        "consumer_system": system,
        "valid_to": (today + timedelta(days=365)).isoformat(),
    }
    filed = await client.post(f"{exchange}/requests", json=application, headers=bureau)
    filed.raise_for_status()
    request = filed.json()
    if request["status"] != "PENDING":
        raise SystemExit(f"the application was {request['status']}: {request['refusal']}")
    decision = {
        "decision": "APPROVED",
        "reasons": REASONS,
        "items": GRANTED,
        "regions": [REGION],
        "valid_to": (today + timedelta(days=182)).isoformat(),
    }
    decided = await client.post(f"{exchange}/requests/{request['request_id']}/decision", json=decision, headers=market)
    decided.raise_for_status()
    grant = await client.get(f"{exchange}/grants/{decided.json()['grant_id']}", headers=bureau)
    grant.raise_for_status()
    return grant.json()


async def query(client: httpx.AsyncClient, url: str, headers: dict, seconds: float = 120) -> dict:
    """The consumer system's query, waited for while the exchange still stores the synced register (404) or is
    too busy storing it to record the access in time (503: an access not recorded is not served)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        answer = await client.get(url, headers=headers)
        if answer.status_code not in (404, 503) or asyncio.get_running_loop().time() > deadline:
            if answer.status_code != 200:
                raise SystemExit(f"{url} answers {answer.status_code}: {answer.text}")
            return dict(answer.json())
        await asyncio.sleep(0.5)


async def share(
    client: httpx.AsyncClient,
    urls: dict[str, str],
    people: dict[str, tuple[str, str]],
    sign_in,
    code: str,
    source: Path,
    credentials: Path,
) -> None:
    directory, exchange = urls["directory"], urls["exchange"]
    bureau = await sign_in(client, "xzspj-admin", people["xzspj-admin"][0])
    market = await sign_in(client, "scjgj-admin", people["scjgj-admin"][0])
    system, secret = consumer_system(people)
    grant = await approved_grant(client, exchange, bureau, market, code, system)
    token = await client.post(
        f"{directory}/token", data={"grant_type": "client_credentials", "client_id": system, "client_secret": secret}
    )
    token.raise_for_status()
    key = a_subject(source)
    path = f"/services/{code}/records/{key}"
    calling = {
        "authorization": f"Bearer {token.json()['access_token']}",
        "x-grant-id": grant["grant_id"],
        "x-purpose": quote(PURPOSE),
    }
    record = await query(client, exchange + path, calling)
    scope = ", ".join(grant["scope"]["regions"])
    print(
        f"""
行政审批局 applied for {code}; 市场监督管理局's data administrator approved it narrowed ({REASONS}).
  grant      {grant["grant_id"]}  (items: {", ".join(grant["items"])}; regions: {scope}; to {grant["valid_to"]})
  purpose    {PURPOSE}
  system     {system}  (its client secret is in {credentials})
Query it as the bureau's consumer system:
  SYSTEM_TOKEN=$(curl -s {directory}/token -d grant_type=client_credentials -d client_id={system} \\
      -d client_secret="$(grep '^{system}' {credentials} | cut -f2)" \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer $SYSTEM_TOKEN" -H "X-Grant-Id: {grant["grant_id"]}" \\
      -H "X-Purpose: {quote(PURPOSE)}" {exchange}{path}
answers {json.dumps(record["fields"], ensure_ascii=False)}"""
    )
