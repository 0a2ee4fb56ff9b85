"""Whose address a request counts as: X-Forwarded-For is believed only from a configured trusted proxy."""

from __future__ import annotations

from ipaddress import ip_network

from starlette.requests import Request

from common.http import client_address

CONSOLE = (ip_network("10.8.0.0/16"), ip_network("fd00::/8"))


def request_from(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", line.encode()) for line in forwarded]
    return Request({"type": "http", "client": (peer, 40000), "headers": headers})


def test_a_trusted_proxy_names_the_browser_by_the_last_forwarded_address() -> None:
    assert client_address(request_from("10.8.3.4", "198.51.100.7"), CONSOLE) == "198.51.100.7"
    # what a browser put in front is not believed: the proxy appends the address it saw
    assert client_address(request_from("10.8.3.4", "203.0.113.9, 198.51.100.7"), CONSOLE) == "198.51.100.7"
    assert client_address(request_from("fd00::1", "2001:db8::5"), CONSOLE) == "2001:db8::5"


def test_a_proxy_that_adds_its_own_header_line_is_still_the_one_believed() -> None:
    # the browser's own line comes first; the proxy appended a second line rather than extending it
    assert client_address(request_from("10.8.3.4", "203.0.113.9", "198.51.100.7"), CONSOLE) == "198.51.100.7"
    assert client_address(request_from("10.8.3.4", "1.2.3.4, 203.0.113.9", "198.51.100.7"), CONSOLE) == "198.51.100.7"
    # a proxy line that is not an address makes the whole header untrusted, whatever the browser's line says
    assert client_address(request_from("10.8.3.4", "203.0.113.9", "unknown"), CONSOLE) == "10.8.3.4"


def test_anyone_else_is_the_address_it_connects_from() -> None:
    assert client_address(request_from("192.0.2.1", "198.51.100.7"), CONSOLE) == "192.0.2.1"  # not a proxy
    assert client_address(request_from("10.8.3.4", "198.51.100.7"), ()) == "10.8.3.4"  # none trusted
    assert client_address(request_from("10.8.3.4"), CONSOLE) == "10.8.3.4"  # nothing forwarded
    assert client_address(request_from("10.8.3.4", "unknown"), CONSOLE) == "10.8.3.4"  # not an address
    assert client_address(request_from("10.8.3.4", "198.51.100.7, "), CONSOLE) == "10.8.3.4"
