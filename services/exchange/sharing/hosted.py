"""Department-hosted interface services (Art. 16; like X-Road's security server): a department registers a
service it runs itself — its OpenAPI description, its base URL, the catalog entry it serves and which
fields of its answers are which data items — and the center calls it for consumers, through the API
channel's one check. Standard library only: what a registration must hold, which calls it opens, and what
of an answer a grant lets through.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlsplit

from common.errors import Conflict, DomainError, Invalid, NotFound
from common.identifiers import InvalidIdentifier
from services.exchange.sharing.grants import MASK

MAX_OPENAPI_BYTES = 256 * 1024  # a registered description, as JSON
MAX_ENDPOINTS = 200
MAX_URL_LENGTH = 2000
MAX_FIELDS = 1000  # entries of the field → data item mapping
MAX_DEPTH = 32  # nesting of an answer the center filters
PROXIED_METHODS = ("get", "post")  # interface services read; other operations of a document are not proxied
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
NOT_FORWARDED = {"host", "content-length", "connection", "transfer-encoding", "te", "upgrade", "cookie", "trailer"}
PCHAR = "/:@!$&'()*+,;=-._~"  # RFC 3986: left as they are in a template's literal segments
MAX_SUBJECTS = 5000  # subjects one proxied answer may carry (each is hashed into its DataAccessed event)
BLOCKED_NETWORKS = "loopback, link-local, private, multicast, reserved or unspecified"


class ServiceStatus(StrEnum):
    ACTIVE = "ACTIVE"
    WITHDRAWN = "WITHDRAWN"


class InvalidService(Invalid):
    """A registration the center refuses: its field and why."""


class NoHostedService(NotFound):
    pass


class HostedServiceFailed(DomainError):
    """The department's service did not answer usefully (502) or in time (504); `code` and `message` word it
    for machines and, in Chinese, for people."""

    def __init__(self, status: int, code: str, detail: str, message: str) -> None:
        super().__init__("hosted_service", detail)
        self.status = status
        self.code = code
        self.message = message


def unreachable(detail: str) -> HostedServiceFailed:
    return HostedServiceFailed(502, "hosted.unreachable", detail, "提供部门的接口服务无法连接或拒绝了请求")


def bad_answer(detail: str) -> HostedServiceFailed:
    return HostedServiceFailed(502, "hosted.bad_answer", detail, "提供部门的接口服务返回了无法使用的应答")


def credential_unreadable(detail: str) -> HostedServiceFailed:
    return HostedServiceFailed(502, "hosted.credential", detail, "中心无法读取该接口服务的调用凭据，需提供部门重新登记")


def too_many_subjects(most: int) -> HostedServiceFailed:
    return HostedServiceFailed(
        502,
        "hosted.too_many_subjects",
        f"the answer names more than {most:,} subjects; ask for fewer (paging) at a time",
        "提供部门的接口服务一次应答的主体过多，请分页查询",
    )


def too_slow(detail: str) -> HostedServiceFailed:
    return HostedServiceFailed(504, "hosted.timeout", detail, "提供部门的接口服务未在规定时间内应答")


@dataclass(frozen=True)
class Endpoint:
    """One call of a registered service: its method and its path template (`/licences/{number}`)."""

    method: str  # upper case
    template: str

    def matches(self, method: str, path: str) -> bool:
        return self.path_for(method, path) is not None

    def path_for(self, method: str, path: str) -> str | None:
        """The path the center calls for a consumer's (decoded) path, or None when it is not this operation:
        rebuilt from the template, each parameter's value percent-encoded whole — so no `/`, `?`, `;` or
        `..` of a value reaches the department as path syntax (`..;` is `..` to Tomcat and Spring)."""
        if method.upper() != self.method:
            return None
        wanted, given = self.template.strip("/").split("/"), path.strip("/").split("/")
        if len(wanted) != len(given):
            return None
        built = []
        for part, value in zip(wanted, given, strict=True):
            if part.startswith("{") and part.endswith("}"):
                if value.split(";", 1)[0] in ("", ".", ".."):
                    return None
                built.append(quote(value, safe=""))
            elif part != value:
                return None
            else:
                built.append(quote(part, safe=PCHAR))
        return "/" + "/".join(built)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True)
class Credential:
    """How the center authenticates itself to the department's service: one header and its value. Only its
    sealed form is stored (see the adapters), and it never travels in an event."""

    header: str
    value: str


@dataclass(frozen=True)
class HostedService:
    service_id: str
    resource_code: str
    provider_code: str
    base_url: str
    openapi: dict[str, Any]
    operations: tuple[Endpoint, ...]
    fields: dict[str, str]  # answer field name → data item of the entry
    credential_header: str | None  # the header the center sends its credential in (the value is sealed)
    registered_by: str
    registered_at: datetime
    updated_at: datetime
    status: ServiceStatus = ServiceStatus.ACTIVE
    revision: int = 1
    envelope: tuple[str, ...] = ()  # answer field names that are containers, paging or counts, not data
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def operation(self, method: str, path: str) -> Endpoint | None:
        return next((o for o in self.operations if o.matches(method, path)), None)

    def path_for(self, method: str, path: str) -> str | None:
        """The path below the base URL a call goes to, or None when no operation of the document is it."""
        return next((p for o in self.operations if (p := o.path_for(method, path)) is not None), None)


@dataclass(frozen=True)
class Registration:
    """What a department states about its service (the command of both registering and updating)."""

    resource_code: str
    base_url: str
    openapi: dict[str, Any]
    fields: dict[str, str]
    credential: Credential | None
    envelope: tuple[str, ...] = ()


def endpoints_of(openapi: Any) -> tuple[Endpoint, ...]:
    """The GET and POST operations an OpenAPI 3 document describes; InvalidService naming what is wrong."""
    if not isinstance(openapi, dict):
        raise InvalidService("openapi", "an OpenAPI document is a JSON object")
    version = openapi.get("openapi")
    if not isinstance(version, str) or not re.fullmatch(r"3\.\d+\.\d+", version):
        raise InvalidService("openapi", "not an OpenAPI 3 document: `openapi` must be a version such as 3.1.0")
    info = openapi.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("title"), str) or not isinstance(info.get("version"), str):
        raise InvalidService("openapi.info", "`info` must give a `title` and a `version`")
    paths = openapi.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise InvalidService("openapi.paths", "the document describes no paths")
    found = []
    for template, item in paths.items():
        if not isinstance(template, str) or not template.startswith("/") or len(template) > 500:
            raise InvalidService("openapi.paths", f"a path must start with / (at most 500 characters): {template!r}")
        if ".." in template.split("/") or "?" in template or "#" in template:
            raise InvalidService("openapi.paths", f"not a path template: {template!r}")
        if not isinstance(item, dict):
            raise InvalidService("openapi.paths", f"{template}: a path item is a JSON object")
        for method in PROXIED_METHODS:
            if method in item:
                if not isinstance(item[method], dict):
                    raise InvalidService("openapi.paths", f"{method.upper()} {template}: an operation is an object")
                found.append(Endpoint(method.upper(), template))
    if not found:
        raise InvalidService("openapi.paths", "the document describes no GET or POST operation")
    if len(found) > MAX_ENDPOINTS:
        raise InvalidService("openapi.paths", f"at most {MAX_ENDPOINTS} operations")
    return tuple(found)


def check_fields(
    fields: dict[str, str], items: Iterable[str], key_item: str | None = None, envelope: Iterable[str] = ()
) -> None:
    """Each answer field names a data item of the entry; one item may be named by several fields. An entry
    with a key item needs a field mapped to it (the center tells each object's subject by it: the grant's
    rows), and a field is either data (mapped) or the answer's envelope, never both."""
    known = set(items)
    envelope = list(envelope)
    if not fields:
        raise InvalidService("fields", "map the answer's fields to the entry's data items: none is mapped")
    if len(fields) > MAX_FIELDS:
        raise InvalidService("fields", f"at most {MAX_FIELDS} fields")
    unknown = sorted({item for item in fields.values() if item not in known})
    if unknown:
        raise InvalidService("fields", f"not data items of the entry: {', '.join(unknown[:10])}")
    if key_item is not None and key_item not in fields.values():
        raise InvalidService("fields", f"map the field that carries the entry's key item {key_item}")
    if len(envelope) > MAX_FIELDS:
        raise InvalidService("envelope", f"at most {MAX_FIELDS} fields")
    both = sorted(set(envelope) & fields.keys())
    if both:
        raise InvalidService("envelope", f"a field is data or envelope, not both: {', '.join(both[:10])}")


def check_credential(credential: Credential | None) -> None:
    if credential is None:
        return
    if not HEADER_NAME.fullmatch(credential.header) or credential.header.lower() in NOT_FORWARDED:
        raise InvalidService("credential.header", "a header name such as Authorization or X-Api-Key")
    if not credential.value or any(c in credential.value for c in "\r\n\0"):
        raise InvalidService("credential.value", "a header value on one line")


def check_url_form(url: str) -> None:
    """The parts of a base URL that need no resolving: http(s), a host, no user or password, query or
    fragment (the center authenticates with the registered credential, and appends the operation's path)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidService("base_url", f"at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidService("base_url", f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidService("base_url", "the scheme must be https or http")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidService("base_url", "no user name or password in the URL: register a credential instead")
    if not parts.hostname:
        raise InvalidService("base_url", "the URL has no host")
    if parts.query or parts.fragment:
        raise InvalidService("base_url", "no query (?…) or fragment (#…) in a base URL")
    if port == 0:
        raise InvalidService("base_url", "port 0 is not a port to call")


def check_addresses(addresses: Iterable[str]) -> None:
    """Refuse a host that resolves to nothing or to an address no production center calls (as the
    notifier's webhooks: a registration must not make the center reach its own network)."""
    found = list(addresses)
    if not found:
        raise InvalidService("base_url", "the URL's host does not resolve")
    for address in found:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
            raise InvalidService(
                "base_url", f"the host resolves to {ip}, a {BLOCKED_NETWORKS} address; only public ones are called"
            )


def registered(service_id: str, r: Registration, provider_code: str, by: str, at: datetime) -> HostedService:
    operations = endpoints_of(r.openapi)
    check_credential(r.credential)
    header = r.credential.header if r.credential else None
    return HostedService(
        service_id, r.resource_code, provider_code, r.base_url.rstrip("/"), r.openapi, operations, dict(r.fields),
        header, by, at, at, envelope=tuple(dict.fromkeys(r.envelope)),
    )  # fmt: skip


def updated(service: HostedService, r: Registration, at: datetime) -> HostedService:
    if service.status is not ServiceStatus.ACTIVE:
        raise Conflict("service_id", "the service is withdrawn; register it again")
    if r.resource_code != service.resource_code:
        raise InvalidService("resource_code", "a service serves one resource; register another service instead")
    check_credential(r.credential)
    return replace(
        service,
        base_url=r.base_url.rstrip("/"),
        openapi=r.openapi,
        operations=endpoints_of(r.openapi),
        fields=dict(r.fields),
        envelope=tuple(dict.fromkeys(r.envelope)),
        credential_header=r.credential.header if r.credential else service.credential_header,
        updated_at=at,
        revision=service.revision + 1,
    )


def withdrawn(service: HostedService, at: datetime) -> HostedService:
    if service.status is not ServiceStatus.ACTIVE:
        raise Conflict("service_id", "the service is withdrawn already")
    return replace(service, status=ServiceStatus.WITHDRAWN, updated_at=at, revision=service.revision + 1)


# -- what of an answer a grant lets through ---------------------------------------------------------------


@dataclass(frozen=True)
class Lens:
    """How a grant sees an answer: the fields it keeps (masked or in clear), the envelope's fields, the
    field(s) carrying the subject's key and which subjects are in its scope."""

    fields: dict[str, str]
    shown: frozenset[str]  # items served
    masked: frozenset[str]  # of those, the ones shown as the mask
    key_fields: frozenset[str]
    identify: Any  # str -> (kind, key); raises InvalidIdentifier
    covers: Any  # (key, kind) -> bool
    envelope: frozenset[str] = frozenset()
    everything: bool = False  # the grant opens every subject (its scope is no narrower than the entry)


@dataclass
class Filtered:
    body: Any
    subjects: list[str] = field(default_factory=list)  # keys of the subjects served
    dropped: int = 0  # objects left out: outside the scope, their key unreadable or missing
    whole_answer_dropped: bool = False
    numbers: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # the envelope's numbers, where


def filtered(body: Any, lens: Lens) -> Filtered:
    """The answer as the grant sees it. Only two kinds of field pass: a mapped field whose item the grant
    opens, and only as a scalar or an array of scalars (sensitive ones masked); and a declared envelope field
    (container, paging, count), whose object or array is filtered in turn. Any other field, and a scalar
    that stands in an array or at the top instead of under a field name, is dropped. An object naming a
    subject outside the grant's rows — or, under a grant narrower than every subject, carrying a mapped
    field but no key field — is left out, and so is an envelope object whose data object was (an answer
    that is such an object: nothing at all, answered as "none"). The envelope's numbers (counts, pages)
    are dropped whenever the grant's rows are not every subject or an object was left out: the center
    cannot recount what a department counted, and a count must not tell of rows outside the grant."""
    out = Filtered(None)
    kept = _filter(body, lens, out, 0) if isinstance(body, dict | list) else _DROPPED
    if kept is _DROPPED:
        out.whole_answer_dropped = True
        kept = None
    if out.dropped or not lens.everything:
        for container, name in out.numbers:
            container.pop(name, None)
    out.body = kept
    return out


_DROPPED = object()
_SCALARS = (str, int, float, bool, type(None))


def _filter(value: Any, lens: Lens, out: Filtered, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise bad_answer(f"the answer nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        kept = [_filter(v, lens, out, depth + 1) for v in value if isinstance(v, dict | list)]
        return [v for v in kept if v is not _DROPPED]
    if not _in_scope(value, lens, out):
        return _DROPPED
    result: dict[str, Any] = {}
    for name, inner in value.items():
        item = lens.fields.get(name)
        if item is not None:
            plain = isinstance(inner, _SCALARS) or (
                isinstance(inner, list) and all(isinstance(v, _SCALARS) for v in inner)
            )
            if plain and item in lens.shown:
                result[name] = MASK if item in lens.masked else inner
        elif name in lens.envelope:
            if isinstance(inner, dict | list):
                child = _filter(inner, lens, out, depth + 1)
                if child is _DROPPED:  # the envelope of one subject outside the grant: left out with it
                    return _DROPPED
                result[name] = child
            else:
                result[name] = inner
                if isinstance(inner, int | float) and not isinstance(inner, bool):
                    out.numbers.append((result, name))
    return result


def _in_scope(value: dict[str, Any], lens: Lens, out: Filtered) -> bool:
    named = lens.key_fields & value.keys()
    if not named:
        if lens.everything or lens.fields.keys().isdisjoint(value.keys()):
            return True
        out.dropped += 1  # data of a subject the center cannot tell: not for a grant of some rows only
        return False
    for name in named:
        try:
            kind, key = lens.identify(str(value[name]))
        except InvalidIdentifier:
            out.dropped += 1
            return False
        if not lens.covers(key, kind):
            out.dropped += 1
            return False
        out.subjects.append(key)
    return True
