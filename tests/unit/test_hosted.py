"""Department-hosted services without a broker: what a registration must hold, which calls it opens, and
what of an answer a grant lets through."""

from __future__ import annotations

import pytest

from common.identifiers import InvalidIdentifier
from services.exchange.sharing.adapters.department_http import HttpDepartmentServices
from services.exchange.sharing.adapters.hosted_mongo import CredentialSeal
from services.exchange.sharing.grants import MASK
from services.exchange.sharing.hosted import (
    Credential,
    Endpoint,
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
)


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
    assert shown.body == {
        "total": 3,
        "items": [{"code": "91360821A", "name": "甲", "boss": MASK}],
        "page": {"next": None},
    }
    assert shown.subjects == ["91360821A"] and shown.dropped == 2 and not shown.whole_answer_dropped


def test_an_answer_that_is_one_subject_outside_the_scope_is_dropped_whole() -> None:
    shown = filtered({"code": "91360822B", "name": "乙"}, LENS)
    assert shown.whole_answer_dropped and shown.body is None


def test_an_answer_nested_beyond_the_bound_is_a_bad_answer() -> None:
    deep: dict = {}
    for _ in range(100):
        deep = {"x": deep}
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
