"""Calls to department-hosted services over HTTP: one pooled httpx client for the process, redirects not
followed, the answer read in chunks up to a bound, every failure turned into 502 or 504 with its reason.
Outside development the host is resolved before each call and refused if it points at the center's own
networks (as the notifier's webhooks)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from services.exchange.sharing.hosted import (
    Credential,
    HostedService,
    InvalidService,
    bad_answer,
    check_addresses,
    check_url_form,
    too_slow,
    unreachable,
)
from services.exchange.sharing.proxy import Answer, Outgoing

PARSED_IN_THREAD = 64 * 1024  # answers larger than this are parsed off the event loop
USER_AGENT = "jian-datashare-exchange"
PATH_SAFE = "/:@!$&'()*+,;=-._~"  # RFC 3986 pchar and the separator: left as they are


async def resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos})


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


class HttpDepartmentServices:
    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float,
        timeout: float,
        max_answer_bytes: int,
        connections: int = 100,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections // 5 or 1),
            follow_redirects=False,
            trust_env=False,  # no proxy or .netrc of the environment: the call goes where it was registered
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def check(self, base_url: str) -> None:
        check_url_form(base_url)
        if not self.allow_private:
            check_addresses(await resolve(*_host_port(base_url)))

    async def send(self, service: HostedService, credential: Credential | None, call: Outgoing) -> Answer:
        if not self.allow_private:
            try:
                check_addresses(await resolve(*_host_port(service.base_url)))
            except InvalidService as exc:
                raise unreachable(exc.rule) from None
        headers = dict(call.headers) | {"user-agent": USER_AGENT}
        if credential is not None:
            headers[credential.header] = credential.value
        # the path as matched is decoded: encoded again, so that a `?` or `#` in a parameter stays in it
        url = service.base_url + quote(call.path, safe=PATH_SAFE) + (f"?{call.query}" if call.query else "")
        try:
            async with asyncio.timeout(self.timeout):
                status, content_type, body = await self._exchange(call, url, headers)
        except (TimeoutError, httpx.TimeoutException):
            raise too_slow(f"the department's service did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise unreachable(f"the department's service could not be reached: {type(exc).__name__}") from None
        if status >= 500:
            raise unreachable(f"the department's service answered {status}")
        if not 200 <= status < 300 and not 400 <= status < 500:
            raise bad_answer(f"the department's service answered {status} (redirects are not followed)")
        if "json" not in content_type:
            raise bad_answer("the department's service did not answer JSON: its items cannot be checked")
        if len(body) > PARSED_IN_THREAD:
            return Answer(status, await asyncio.to_thread(_parsed, body), len(body))
        return Answer(status, _parsed(body), len(body))

    async def _exchange(self, call: Outgoing, url: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        request = self.client.build_request(call.method, url, headers=headers, content=call.body or None)
        response = await self.client.send(request, stream=True)
        try:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_answer_bytes:
                raise bad_answer(f"the answer is over {self.max_answer_bytes:,} bytes")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():  # decoded: the bound is on what is parsed
                size += len(chunk)
                if size > self.max_answer_bytes:
                    raise bad_answer(f"the answer is over {self.max_answer_bytes:,} bytes")
                chunks.append(chunk)
            return response.status_code, response.headers.get("content-type", ""), b"".join(chunks)
        finally:
            await response.aclose()


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise bad_answer("the department's service answered malformed JSON") from None
