"""Department-hosted services without a broker: what a registration must hold, which calls it opens, and
what of an answer a grant lets through."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from common.codec import SCHEMA_DIR, EventCodec, load_schema
from common.events import Event
from common.identifiers import InvalidIdentifier
from services.exchange.sharing.adapters import department_http, hosted_routes
from services.exchange.sharing.adapters.department_http import HttpDepartmentServices, PinnedPools
from services.exchange.sharing.adapters.hosted_mongo import BusHostedEvents, CredentialSeal
from services.exchange.sharing.grants import MASK
from services.exchange.sharing.hosted import (
    Credential,
    Endpoint,
    HostedService,
    HostedServiceFailed,
    InvalidService,
    Lens,
    check_addresses,
    check_credential,
    check_fields,
    check_url_form,
    endpoints_of,
    filtered,
)
from services.exchange.sharing.proxy import Outgoing

DOC = {
    "openapi": "3.1.0",
    "info": {"title": "许可证查询", "version": "1"},
    "paths": {
        "/licences/{number}": {"get": {"responses": {}}, "delete": {"responses": {}}},
        "/licences": {"post": {"responses": {}}},
    },
}


def test_the_get_and_post_operations_of_an_openapi_3_document_are_what_the_center_proxies() -> None:
    assert endpoints_of(DOC) == (Endpoint("GET", "/licences/{number}"), Endpoint("POST", "/licences"))


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([], "JSON object"),
        ({**DOC, "openapi": "2.0"}, "OpenAPI 3"),
        ({**DOC, "swagger": "2.0", "openapi": None}, "OpenAPI 3"),
        ({**DOC, "info": {"title": "x"}}, "`info`"),
        ({**DOC, "paths": {}}, "no paths"),
        ({**DOC, "paths": {"licences": {"get": {}}}}, "start with /"),
        ({**DOC, "paths": {"/a/../b": {"get": {}}}}, "not a path template"),
        ({**DOC, "paths": {"/a": {"delete": {}}}}, "no GET or POST"),
    ],
)
def test_a_document_that_is_not_openapi_3_is_refused_naming_what_is_wrong(doc, says: str) -> None:
    with pytest.raises(InvalidService) as refused:
        endpoints_of(doc)
    assert says in str(refused.value)


def test_a_call_matches_an_operation_by_method_and_template_one_segment_per_parameter() -> None:
    one = Endpoint("GET", "/licences/{number}")
    assert one.matches("get", "/licences/A-1")
    assert not one.matches("POST", "/licences/A-1")
    assert not one.matches("GET", "/licences/A-1/owner")
    assert not one.matches("GET", "/licences/..")
    assert not one.matches("GET", "/licences")
    assert not one.matches("GET", "/other/A-1")


def test_the_field_mapping_names_only_items_of_the_entry() -> None:
    check_fields({"name": "企业名称"}, ["企业名称"])
    with pytest.raises(InvalidService, match="not data items of the entry: 年产值"):
        check_fields({"name": "企业名称", "output": "年产值"}, ["企业名称"])
    with pytest.raises(InvalidService, match="none is mapped"):
        check_fields({}, ["企业名称"])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.org", "https or http"),
        ("https://user:pw@example.org", "no user name"),
        ("https://example.org/api?x=1", "no query"),
        ("https:///api", "no host"),
        ("https://example.org:0/", "port 0"),
    ],
)
def test_a_base_url_is_http_with_a_host_and_nothing_secret_in_it(url: str, says: str) -> None:
    with pytest.raises(InvalidService, match=says):
        check_url_form(url)


def test_in_production_a_host_on_the_centers_own_networks_is_refused() -> None:
    check_addresses(["93.184.216.34"])
    for address in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "::ffff:192.168.0.1", "0.0.0.0"]:
        with pytest.raises(InvalidService, match="only public ones"):
            check_addresses([address])
    with pytest.raises(InvalidService, match="does not resolve"):
        check_addresses([])


def test_a_credential_is_one_header_on_one_line() -> None:
    check_credential(Credential("X-Api-Key", "k1"))
    with pytest.raises(InvalidService):
        check_credential(Credential("Cookie", "a=b"))
    with pytest.raises(InvalidService):
        check_credential(Credential("X-Api-Key", "k1\r\nX-Other: 1"))


def _identify(key: str) -> tuple[str, str]:
    if not key.startswith("91"):
        raise InvalidIdentifier("credit_code", "check", "not a credit code")
    return "credit_code", key


LENS = Lens(
    fields={"code": "统一社会信用代码", "name": "企业名称", "boss": "法定代表人", "capital": "注册资本"},
    shown=frozenset({"统一社会信用代码", "企业名称", "法定代表人"}),
    masked=frozenset({"法定代表人"}),
    key_fields=frozenset({"code"}),
    identify=_identify,
    covers=lambda key, _kind: key.startswith("91360821"),
    envelope=frozenset({"total", "items", "page", "next", "data"}),
)
EVERY_ROW = replace(LENS, everything=True, covers=lambda _key, _kind: True)


def test_an_answer_keeps_only_granted_items_in_objects_and_arrays_of_objects() -> None:
    answer = {
        "total": 3,
        "items": [
            {"code": "91360821A", "name": "甲", "boss": "张三", "capital": 100},
            {"code": "91360822B", "name": "乙", "boss": "李四", "capital": 200},  # outside the row scope
            {"code": "bad", "name": "丙"},  # a key the entry's key item cannot be: left out too
        ],
        "page": {"next": None},
    }
    shown = filtered(answer, LENS)
    assert shown.body == {"items": [{"code": "91360821A", "name": "甲", "boss": MASK}], "page": {"next": None}}
    assert shown.subjects == ["91360821A"] and shown.dropped == 2 and not shown.whole_answer_dropped


def test_an_answer_that_is_one_subject_outside_the_scope_is_dropped_whole() -> None:
    shown = filtered({"code": "91360822B", "name": "乙"}, LENS)
    assert shown.whole_answer_dropped and shown.body is None


def test_an_answer_nested_beyond_the_bound_is_a_bad_answer() -> None:
    deep: dict = {}
    for _ in range(100):
        deep = {"data": deep}  # an envelope field: walked into
    with pytest.raises(HostedServiceFailed) as failed:
        filtered(deep, LENS)
    assert failed.value.status == 502 and failed.value.code == "hosted.bad_answer"


async def test_outside_development_the_adapter_refuses_a_base_url_on_loopback() -> None:
    guarded = HttpDepartmentServices(allow_private=False, connect_timeout=1, timeout=1, max_answer_bytes=1024)
    open_ = HttpDepartmentServices(allow_private=True, connect_timeout=1, timeout=1, max_answer_bytes=1024)
    try:
        with pytest.raises(InvalidService, match="loopback"):
            await guarded.check("http://127.0.0.1:8080/api")
        with pytest.raises(InvalidService, match="loopback"):
            await guarded.check("http://localhost:8080/api")
        await open_.check("http://127.0.0.1:8080/api")
    finally:
        await guarded.close()
        await open_.close()


def test_a_credential_opens_only_with_its_key_and_for_its_own_service() -> None:
    sealed = CredentialSeal(b"k" * 32).seal("s1", Credential("X-Api-Key", "secret-1"))
    assert b"secret-1" not in bytes(sealed["sealed"])
    assert CredentialSeal(b"k" * 32).open("s1", sealed) == Credential("X-Api-Key", "secret-1")
    with pytest.raises(ValueError, match="does not open"):
        CredentialSeal(b"other" * 8).open("s1", sealed)
    with pytest.raises(ValueError, match="does not open"):
        CredentialSeal(b"k" * 32).open("s2", sealed)


def test_only_mapped_scalars_and_declared_envelope_fields_pass() -> None:
    answer = {
        "total": 3,
        "items": [
            {
                "code": "91360821A",
                "name": "甲",
                "法定代表人": "张三",  # a field the mapping does not name: data the grant never opened
                "detail": {"boss": "张三", "capital": 100},  # an undeclared object, mapped names inside
                "boss": {"name": "张三", "phone": "138"},  # a mapped field holding an object: not the item
                "capital": [100, 200],
            },
        ],
        "debug": "select * from enterprises",
    }
    shown = filtered(answer, LENS)
    assert shown.body == {"items": [{"code": "91360821A", "name": "甲"}]}
    # a mapped field at the top, holding an object: dropped under a grant of every row; under one of some
    # rows the answer carries data of no subject the center can tell, and nothing of it passes
    answer["name"] = {"phone": "13800000000"}
    assert filtered(answer, EVERY_ROW).body == {"total": 3, "items": [{"code": "91360821A", "name": "甲"}]}
    assert filtered(answer, LENS).whole_answer_dropped
    names = filtered({"code": "91360821A", "name": ["甲", "甲公司"], "boss": [{"x": 1}]}, LENS)
    assert names.body == {"code": "91360821A", "name": ["甲", "甲公司"]}  # an array of scalars is the item's


def test_under_a_grant_of_some_rows_an_object_without_its_key_field_is_left_out() -> None:
    answer = {"items": [{"code": "91360821A", "name": "甲"}, {"name": "乙(no key field)", "capital": 5}]}
    shown = filtered(answer, LENS)
    assert shown.body == {"items": [{"code": "91360821A", "name": "甲"}]} and shown.dropped == 1
    every = filtered(answer, EVERY_ROW)  # a grant of every row has no row to keep out
    assert every.body == {"items": [{"code": "91360821A", "name": "甲"}, {"name": "乙(no key field)"}]}


def test_the_envelopes_numbers_pass_only_when_no_row_could_have_been_left_out() -> None:
    answer = {"total": 1, "page": 1, "items": [{"code": "91360821A", "name": "甲"}], "next": "p2"}
    assert filtered(answer, EVERY_ROW).body == answer
    assert filtered(answer, LENS).body == {"items": [{"code": "91360821A", "name": "甲"}], "next": "p2"}
    bad_key = {"total": 2, "items": [{"code": "91360821A"}, {"code": "bad"}]}
    assert filtered(bad_key, EVERY_ROW).body == {"items": [{"code": "91360821A"}]}


def test_an_envelope_around_one_subject_outside_the_rows_is_no_answer_at_all() -> None:
    outside = filtered({"total": 1, "data": {"code": "91360822B", "name": "乙"}}, LENS)
    assert outside.whole_answer_dropped and outside.body is None
    inside = filtered({"data": {"code": "91360821A", "name": "甲"}}, LENS)
    assert inside.body == {"data": {"code": "91360821A", "name": "甲"}} and not inside.whole_answer_dropped


def test_an_answer_that_is_a_bare_scalar_carries_nothing_a_grant_opens() -> None:
    assert filtered("13800000000", LENS).body is None
    assert filtered(["138", {"code": "91360821A"}], LENS).body == [{"code": "91360821A"}]


def test_an_entry_with_a_key_item_needs_the_field_that_carries_it_mapped() -> None:
    check_fields({"code": "统一社会信用代码", "name": "企业名称"}, ["统一社会信用代码", "企业名称"], "统一社会信用代码")
    with pytest.raises(InvalidService, match="key item 统一社会信用代码"):
        check_fields({"name": "企业名称"}, ["统一社会信用代码", "企业名称"], "统一社会信用代码")
    with pytest.raises(InvalidService, match="data or envelope, not both: name"):
        check_fields({"name": "企业名称"}, ["企业名称"], None, ["total", "name"])


def test_the_path_called_is_the_template_with_each_parameter_encoded_whole() -> None:
    one = Endpoint("GET", "/search/{kind}/{id}")
    assert one.path_for("GET", "/search/a/b") == "/search/a/b"
    assert one.path_for("GET", "/search/a/b/") == "/search/a/b"  # the trailing / as the template has it
    assert one.path_for("GET", "/search/a/x?admin=1") == "/search/a/x%3Fadmin%3D1"
    assert one.path_for("GET", "/search/a/x;jsessionid=1") == "/search/a/x%3Bjsessionid%3D1"
    assert one.path_for("GET", "/search/a/50%") == "/search/a/50%25"
    for dotted in ("/search/..;/admin", "/search/.;x/admin", "/search/a/..", "/search/;a/b", "/search//a/b"):
        assert one.path_for("GET", dotted) is None, dotted
        assert not one.matches("GET", dotted)
    assert Endpoint("GET", "/licences").path_for("GET", "//licences//") == "/licences"  # as the template says


def _service(base_url: str) -> HostedService:
    at = datetime.now(UTC)
    operations = (Endpoint("GET", "/search/{id}"),)
    return HostedService("s", "R", "P", base_url, {}, operations, {}, None, "x", at, at)


def _recording(seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_outside_development_the_call_connects_to_the_address_checked_not_to_a_second_lookup() -> None:
    lookups: list[str] = []
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # a name rebound to loopback after the check

    async def rebinding(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    seen: list[httpx.Request] = []
    guarded = HttpDepartmentServices(
        allow_private=False, connect_timeout=1, timeout=1, max_answer_bytes=1024, resolver=rebinding
    )
    guarded.client = _recording(seen)
    try:
        answer = await guarded.send(
            _service("https://dept.example:8443/api"), None, Outgoing("GET", "/search/1", "q=1", b"", {})
        )
    finally:
        await guarded.close()
    assert answer.body == {"ok": True} and lookups == ["dept.example"]
    assert str(seen[0].url) == "https://93.184.216.34:8443/api/search/1?q=1"
    assert seen[0].headers["host"] == "dept.example:8443"
    assert seen[0].extensions["sni_hostname"] == "dept.example"


async def test_outside_development_a_name_resolving_to_loopback_is_never_called() -> None:
    seen: list[httpx.Request] = []
    guarded = HttpDepartmentServices(allow_private=False, connect_timeout=1, timeout=1, max_answer_bytes=1024)
    guarded.client = _recording(seen)
    try:
        with pytest.raises(HostedServiceFailed) as refused:
            await guarded.send(_service("http://localhost:8080/api"), None, Outgoing("GET", "/search/1", "", b"", {}))
    finally:
        await guarded.close()
    assert refused.value.code == "hosted.unreachable" and "loopback" in refused.value.rule and seen == []


async def test_a_resolver_that_hangs_is_bounded_by_the_calls_time() -> None:
    async def hanging(_host: str, _port: int) -> list[str]:
        await asyncio.sleep(30)
        return ["93.184.216.34"]

    guarded = HttpDepartmentServices(
        allow_private=False, connect_timeout=0.1, timeout=0.2, max_answer_bytes=1024, resolver=hanging
    )
    try:
        with pytest.raises(HostedServiceFailed) as late:
            await guarded.send(_service("http://dept.example/api"), None, Outgoing("GET", "/search/1", "", b"", {}))
    finally:
        await guarded.close()
    assert late.value.status == 504


async def test_a_large_answer_is_serialised_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    dumps = json.dumps

    def recording(*args, **kwargs):
        threads.append(threading.get_ident())
        return dumps(*args, **kwargs)

    monkeypatch.setattr(hosted_routes.json, "dumps", recording)
    body = {"items": [{"name": "甲" * 10}]}
    assert (
        await hosted_routes.rendered(body, hosted_routes.ENCODED_IN_THREAD + 1)
        == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert threads and threads[0] != threading.get_ident()
    await hosted_routes.rendered(body, 10)
    assert threads[1] == threading.get_ident()  # a small one is not worth a thread


class _Emitted:
    """The outbox's side of a transaction: what was emitted, on which topic."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []

    def emit(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))


@pytest.mark.parametrize("event_type", ["HostedServiceRegistered", "HostedServiceUpdated"])
def test_a_registration_event_carries_the_declared_envelope_and_readers_of_the_first_version_still_read_it(
    event_type: str,
) -> None:
    service = replace(_service("https://dept.example/api"), envelope=("total", "items"))
    emitted = _Emitted()
    events = BusHostedEvents(emitted)  # type: ignore[arg-type]
    if event_type == "HostedServiceRegistered":
        events.registered(service)
    else:
        events.updated(service, "x")
    [(_, event)] = emitted.events
    current = EventCodec.from_folder()
    data = current.encode(event_type, event.payload)
    assert current.decode(data)[1]["envelope"] == ["total", "items"]

    first = json.loads((SCHEMA_DIR / "history" / f"{event_type}.1.avsc").read_text(encoding="utf-8"))
    reader_of_first = EventCodec([load_schema(first)])
    reader_of_first.add_writer_schema(current.schema(event_type).raw)
    read = reader_of_first.decode(data)[1]
    assert "envelope" not in read and read["service_id"] == "s" and read["base_url"] == "https://dept.example/api"
    # and a message of the first version reads today with no envelope declared
    written_first = reader_of_first.encode(event_type, {k: v for k, v in event.payload.items() if k != "envelope"})
    assert current.decode(written_first)[1]["envelope"] == []


async def test_two_names_on_one_address_never_share_a_pooled_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pinned calls go to the address: pooled by address alone, a connection opened (and, over TLS, its
    certificate checked) for one registered name would carry the other's calls."""
    served: list[list[str]] = []  # per connection accepted, the Host of each request it carried

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hosts: list[str] = []
        served.append(hosts)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                hosts += [
                    line.split(":", 1)[1].strip()
                    for line in head.decode().split("\r\n")
                    if line.lower().startswith("host:")
                ]
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def one_address(_host: str, _port: int) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(department_http, "check_addresses", lambda _addresses: None)  # loopback stands in for it
    server = await asyncio.start_server(keep_alive, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pinned = HttpDepartmentServices(
        allow_private=False, connect_timeout=2, timeout=2, max_answer_bytes=1024, resolver=one_address
    )
    try:
        for name in ("a.example", "b.example", "a.example", "b.example"):
            answer = await pinned.send(
                _service(f"http://{name}:{port}/api"), None, Outgoing("GET", "/search/1", "", b"", {})
            )
            assert answer.body == {}
    finally:
        await pinned.close()
        server.close()
        await server.wait_closed()
    by_name = sorted(served)
    assert by_name == [[f"a.example:{port}"] * 2, [f"b.example:{port}"] * 2]  # one connection per name, reused


class _FakePool(httpx.AsyncBaseTransport):
    """A pool whose answers are in use until closed, and whose closing takes a moment (other calls run)."""

    def __init__(self, name: str, log: dict[str, list[str]]) -> None:
        self.name, self.log, self.in_use = name, log, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_use += 1
        self.log["calls"].append(self.name)
        pool = self

        class Body(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                yield b"{}"

            async def aclose(self) -> None:
                pool.in_use -= 1

        return httpx.Response(200, stream=Body())

    async def aclose(self) -> None:
        if self.in_use:
            self.log["closed_in_use"].append(self.name)
        self.log["closed"].append(self.name)
        for _ in range(3):
            await asyncio.sleep(0)


def _fake_pools(kept: int, **limit: int) -> tuple[PinnedPools, dict[str, list[str]]]:
    log: dict[str, list[str]] = {"calls": [], "closed": [], "closed_in_use": []}
    made = iter("ABCDEFGH")
    return PinnedPools(lambda: _FakePool(next(made), log), kept=kept, **limit), log


def _to(name: str) -> httpx.Request:
    return httpx.Request("GET", "http://127.0.0.1:8080/x", headers={"host": f"{name}.example:8080"})


async def _two_idle_pools(pools: PinnedPools) -> None:
    held = [await pools.handle_async_request(_to(n)) for n in ("a", "b")]  # both busy: neither trimmed
    for answer in held:
        await answer.aclose()
    assert len(pools.pools) == 2


async def test_a_pool_beyond_the_bound_is_closed_only_if_idle_and_never_under_a_call_that_took_it() -> None:
    pools, log = _fake_pools(kept=1)
    await _two_idle_pools(pools)
    # c's trim closes a and b, its closing takes a moment, and meanwhile a call to b comes
    answers = await asyncio.gather(*(pools.handle_async_request(_to(n)) for n in ("c", "b")))
    assert log["closed_in_use"] == [] and sorted(log["closed"]) == ["A", "B"]
    for answer in answers:
        await answer.aclose()
    busy = await pools.handle_async_request(_to("e"))  # in use while f comes: f's trim leaves it
    await pools.handle_async_request(_to("f"))
    assert log["closed_in_use"] == [] and len(log["closed"]) == len(set(log["closed"]))
    await busy.aclose()
    await pools.aclose()


async def test_two_trims_at_once_never_raise_and_close_each_pool_once() -> None:
    pools, log = _fake_pools(kept=1)
    await _two_idle_pools(pools)
    answers = await asyncio.gather(*(pools.handle_async_request(_to(n)) for n in ("c", "d")))
    assert sorted(log["closed"]) == ["A", "B"] and log["closed_in_use"] == []
    for answer in answers:
        await answer.aclose()
    await pools.aclose()


async def test_one_bound_holds_across_all_pools_until_answers_are_closed() -> None:
    pools, log = _fake_pools(kept=8, limit=2)
    first = await pools.handle_async_request(_to("a"))
    second = await pools.handle_async_request(_to("b"))
    third = asyncio.ensure_future(pools.handle_async_request(_to("c")))  # another name: another pool
    await asyncio.sleep(0.05)
    assert not third.done() and log["calls"] == ["A", "B"]  # 2 calls at once in all, not 2 per pool
    await first.aclose()
    await (await asyncio.wait_for(third, 1)).aclose()
    await second.aclose()
    failing = PinnedPools(lambda: _Failing(), limit=1)
    for _ in range(3):  # a failed call gives its slot back
        with pytest.raises(httpx.ConnectError):
            await asyncio.wait_for(failing.handle_async_request(_to("x")), 1)
    services = HttpDepartmentServices(
        allow_private=True, connect_timeout=1, timeout=1, max_answer_bytes=10, connections=7
    )
    transport = services.client._transport
    assert isinstance(transport, PinnedPools) and transport.limit == 7
    await services.close()


class _Failing(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)
