"""Calls to department-hosted services over HTTP: one pooled httpx client for the process, redirects not
followed, the answer read in chunks up to a bound, every failure turned into 502 or 504 with its reason.
Outside development the host is resolved before each call (within the call's time), refused if it points at
the center's own networks (as the notifier's webhooks), and the call connects to the address just checked —
the name goes in `Host` and as the TLS server name — so a name cannot resolve to a public address for the
check and to a private one for the connection (DNS rebinding). Connections are pooled per (scheme, host name,
address, port), not per address: two registered names on one address never share a connection, nor the TLS
session whose certificate was checked for the other name. One bound holds across all the pools: at most
`connections` calls at once (so as many connections), each pool keeping a few idle ones alive."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
POOLS_KEPT = 256  # connection pools held at once (one per registered name and address); idle ones go first
KEPT_ALIVE = 4  # idle connections each pool keeps for its next calls


async def resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos})


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


PoolKey = tuple[str, str, str, int | None]


class _Released(httpx.AsyncByteStream):
    """An answer's body that tells its pool it is no longer in use once closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self.stream = stream
        self.release = release
        self.open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        finally:
            if self.open:
                self.open = False
                self.release()


class PinnedPools(httpx.AsyncBaseTransport):
    """A connection pool per (scheme, host name, address, port). httpx pools by the URL's origin, which for a
    pinned call is the address alone: a connection opened (and its certificate checked) for one name would
    carry another name's calls. At most `limit` calls at once across all pools (a slot taken per call, given
    back when its answer is closed). Beyond `kept` pools, the least recently used idle ones are closed."""

    def __init__(self, make: Callable[[], httpx.AsyncBaseTransport], kept: int = POOLS_KEPT, limit: int = 100) -> None:
        self.make = make
        self.kept = kept
        self.limit = limit
        self.slots = asyncio.Semaphore(limit)
        self.pools: OrderedDict[PoolKey, httpx.AsyncBaseTransport] = OrderedDict()
        self.busy: Counter[PoolKey] = Counter()

    @staticmethod
    def key(request: httpx.Request) -> PoolKey:
        name = str(request.extensions.get("sni_hostname") or request.headers.get("host") or request.url.host)
        return request.url.scheme, name.lower(), request.url.host, request.url.port

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = self.key(request)
        await self.slots.acquire()  # within the call's time (HttpDepartmentServices.send)
        self.busy[key] += 1  # before the trim: the pool this call takes is never the one closed
        try:
            pool = self.pools.get(key)
            if pool is None:
                pool = self.pools[key] = self.make()
            self.pools.move_to_end(key)
            await self._trim()
            response = await pool.handle_async_request(request)
        except BaseException:
            self._release(key)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, lambda: self._release(key))
        return response

    def _release(self, key: PoolKey) -> None:
        self.slots.release()
        self.busy[key] -= 1
        if self.busy[key] <= 0:
            del self.busy[key]

    async def _trim(self) -> None:
        """Victims chosen and taken out at once, before the first await: only pools idle now (none a call can
        take meanwhile, since they are no longer there), each taken by one trim only."""
        excess = len(self.pools) - self.kept
        if excess <= 0:
            return
        victims = [key for key in self.pools if key not in self.busy][:excess]
        closing = [pool for key in victims if (pool := self.pools.pop(key, None)) is not None]
        for pool in closing:
            await pool.aclose()

    async def aclose(self) -> None:
        pools, self.pools = list(self.pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()


class HttpDepartmentServices:
    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float,
        timeout: float,
        max_answer_bytes: int,
        connections: int = 100,
        resolver: Callable[[str, int], Awaitable[list[str]]] = resolve,
    ) -> None:
        self.allow_private = allow_private
        self.resolve = resolver
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        # the bound is the pools' together (PinnedPools.slots); each keeps a few idle connections alive
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=min(KEPT_ALIVE, connections))
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=PinnedPools(lambda: httpx.AsyncHTTPTransport(limits=limits, trust_env=False), limit=connections),
            follow_redirects=False,
            trust_env=False,  # no proxy or .netrc of the environment: the call goes where it was registered
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def check(self, base_url: str) -> None:
        check_url_form(base_url)
        if not self.allow_private:
            check_addresses(await self.resolve(*_host_port(base_url)))

    async def send(self, service: HostedService, credential: Credential | None, call: Outgoing) -> Answer:
        headers = dict(call.headers) | {"user-agent": USER_AGENT}
        if credential is not None:
            headers[credential.header] = credential.value
        # the path is the operation's template with its parameters encoded (HostedService.path_for)
        url = service.base_url + call.path + (f"?{call.query}" if call.query else "")
        try:
            async with asyncio.timeout(self.timeout):
                url, extensions = await self._pinned(url, headers)
                status, content_type, body = await self._exchange(call, url, headers, extensions)
        except InvalidService as exc:
            raise unreachable(exc.rule) from None
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

    async def _pinned(self, url: str, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
        """Outside development: the URL with its host replaced by the address just resolved and checked, the
        name in `Host` (set in `headers`) and, for https, as the server name the certificate is checked for."""
        if self.allow_private:
            return url, {}
        host, port = _host_port(url)
        addresses = await self.resolve(host, port)
        check_addresses(addresses)
        address = ipaddress.ip_address(addresses[0].split("%", 1)[0])
        parts = urlsplit(url)
        literal = f"[{address}]" if address.version == 6 else str(address)
        headers["host"] = parts.netloc
        extensions: dict[str, Any] = {}
        if parts.scheme == "https" and not _is_address(host):
            extensions["sni_hostname"] = host
        netloc = literal + (f":{parts.port}" if parts.port is not None else "")
        return urlunsplit(parts._replace(netloc=netloc)), extensions

    async def _exchange(
        self, call: Outgoing, url: str, headers: dict[str, str], extensions: dict[str, Any]
    ) -> tuple[int, str, bytes]:
        request = self.client.build_request(
            call.method, url, headers=headers, content=call.body or None, extensions=extensions
        )
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


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise bad_answer("the department's service answered malformed JSON") from None
