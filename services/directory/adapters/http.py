"""Directory REST routes: departments, people, data administrators, machine identities, sign-in, JWKS."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from common import limits
from common.fields import Code, Name, Secret, Text
from common.guard import Guard
from common.http import UNAUTHENTICATED, client_address
from common.metrics import AUTH_FAILURES
from common.policy import MachineKind, Principal, Role, Unauthenticated
from common.settings import Networks
from services.directory import handlers, login
from services.directory.adapters.mongo import MongoRefreshTokens, MongoUnitOfWork
from services.directory.domain.model import DepartmentLevel, NotFound
from services.directory.ports import SecretHasher

Reader = Annotated[Principal, Depends(Guard("directory.read"))]
DepartmentManager = Annotated[Principal, Depends(Guard("directory.department.manage"))]
PersonManager = Annotated[Principal, Depends(Guard("directory.person.manage"))]
Appointer = Annotated[Principal, Depends(Guard("directory.data_administrator.appoint"))]
MachineManager = Annotated[Principal, Depends(Guard("directory.machine.manage"))]
Public = [Depends(Guard("public"))]


class DepartmentBody(BaseModel):
    code: Code = Field(description="Unified social credit code (GB 32100)")
    name: Name
    level: DepartmentLevel
    parent_code: Code | None = None


class DepartmentChangeBody(BaseModel):
    name: Name
    parent_code: Code | None = None
    active: bool = True


class DepartmentView(BaseModel):
    code: str = Field(description="Unified social credit code (GB 32100)")
    name: str
    level: DepartmentLevel
    parent_code: str | None = None
    active: bool


class PersonBody(BaseModel):
    person_id: Code = Field(description="The login name", examples=["zhang.wei"])
    name: Name
    department_code: Code
    roles: list[Role] = Field([], max_length=len(Role))


class PersonView(BaseModel):
    person_id: str | None = Field(description="The login name; in listings only for those who administer people")
    name: str
    department_code: str
    roles: list[Role]
    active: bool


class RolesBody(BaseModel):
    roles: list[Role] = Field(max_length=len(Role))


class AppointmentBody(BaseModel):
    person_id: Code


class AppointmentView(BaseModel):
    """Logins (`person_id`, `registered_by`, `replaces_person_id`) only to those who administer people; the names
    of the department's people to every reader."""

    department_code: str
    person_id: str | None
    person_name: str | None = None
    since: date
    registered_by: str | None
    replaces_person_id: str | None
    replaces_person_name: str | None = None


class MachineBody(BaseModel):
    department_code: Code
    kind: MachineKind


class RevokeBody(BaseModel):
    reason: Text


class ReactivationBody(BaseModel):
    reason: Text = Field(min_length=1, description="why the deactivation is undone; recorded")


class AdapterKeyBody(BaseModel):
    public_key: Text = Field(
        description="Ed25519 public key, PEM (`datashare-adapter keygen` or `openssl pkey -pubout` prints it)"
    )
    replaces: Code | None = Field(None, description="rotation: the key id this key replaces (revoked at once)")


class AdapterKeyView(BaseModel):
    key_id: str
    client_id: str
    department_code: str
    public_key: str
    registered_by: str
    registered_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    reason: str | None


class IssuedSecretView(BaseModel):
    login: str = Field(description="username or client_id")
    secret: str = Field(description="shown this once; only its hash is stored")


class TokenView(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str | None = None


def _person_view(person: Any, show_login: bool = True) -> PersonView:
    return PersonView(
        person_id=person.person_id if show_login else None,
        name=person.name,
        department_code=person.department_code,
        roles=sorted(person.roles),
        active=person.active,
    )


def _appointment_view(appointment: Any, names: dict[str, str], show_logins: bool) -> AppointmentView:
    def login(value: str | None) -> str | None:
        return value if show_logins else None

    return AppointmentView(
        department_code=appointment.department_code,
        person_id=login(appointment.person_id),
        person_name=names.get(appointment.person_id),
        since=appointment.since,
        registered_by=login(appointment.registered_by),
        replaces_person_id=login(appointment.replaces_person_id),
        replaces_person_name=names.get(appointment.replaces_person_id) if appointment.replaces_person_id else None,
    )


def basic_client_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The client id and secret of an `Authorization: Basic` header (RFC 6749 2.3.1: each form-encoded, then
    joined by a colon), None without one. The reason of a refusal never repeats the secret."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not colon or not client_id or not secret:
        raise Unauthenticated("Basic credentials need client_id:client_secret")
    if len(client_id) > limits.CODE_LENGTH or len(secret) > limits.SECRET_LENGTH:
        raise Unauthenticated("invalid client credentials")
    return client_id, secret


class TokenCors:
    """CORS for the token endpoint only: the services' /docs (other origins) sign in here from the browser.
    Only the listed origins get the headers that let a page read the answer; no cookies are involved."""

    PATHS = frozenset({"/token"})

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "X-Requested-With"],  # what Swagger UI sends besides the safelisted
            expose_headers=["Retry-After"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def router(
    uow: MongoUnitOfWork, hasher: SecretHasher, signin: login.SignIn, jwks: dict, trusted_proxies: Networks = ()
) -> APIRouter:
    api = APIRouter(tags=["directory"])

    @api.get("/.well-known/jwks.json", dependencies=Public, tags=["sign-in"], summary="Token verification keys")
    async def keys() -> dict:
        return jwks

    @api.post(
        "/token",
        dependencies=Public,
        response_model=TokenView,
        responses={401: UNAUTHENTICATED},
        tags=["sign-in"],
        summary="OAuth2 token endpoint: password, client_credentials or refresh_token grant",
        description="Form-encoded (RFC 6749). People send username and password; machines send client_id and "
        "client_secret in the form or as HTTP Basic (`Authorization: Basic`), not both. Never in the URL.",
    )
    async def token(
        request: Request,
        response: Response,
        grant_type: Annotated[Literal["password", "client_credentials", "refresh_token"], Form()],
        username: Annotated[Code | None, Form()] = None,
        password: Annotated[Secret | None, Form()] = None,
        client_id: Annotated[Code | None, Form()] = None,
        client_secret: Annotated[Secret | None, Form()] = None,
        refresh_token: Annotated[Secret | None, Form()] = None,
    ) -> TokenView:
        client = client_address(request, trusted_proxies)
        if grant_type == "client_credentials" and (
            basic := basic_client_credentials(request.headers.get("authorization"))
        ):
            if client_id or client_secret:  # RFC 6749 2.3: one way of authenticating the client, not two
                raise Unauthenticated("client credentials both as Basic and in the form: send them once")
            client_id, client_secret = basic
        if grant_type == "password" and username and password:
            grant = await login.with_password(signin, username, password, client)
        elif grant_type == "client_credentials" and client_id and client_secret:
            grant = await login.with_client_credentials(signin, client_id, client_secret, client)
        elif grant_type == "refresh_token" and refresh_token:
            grant = await login.with_refresh_token(signin, refresh_token, client)
        else:
            raise Unauthenticated(f"grant {grant_type} needs its credentials in the form")
        response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1: tokens are not to be cached
        response.headers["Pragma"] = "no-cache"
        return TokenView(
            access_token=grant.access_token, expires_in=grant.expires_in, refresh_token=grant.refresh_token
        )

    @api.get("/departments", response_model=list[DepartmentView], summary="Every department")
    async def departments(_: Reader) -> list[DepartmentView]:
        return [DepartmentView.model_validate(d, from_attributes=True) for d in await uow.departments()]

    @api.post("/departments", status_code=201, response_model=DepartmentView, summary="Register a department")
    async def register_department(body: DepartmentBody, actor: DepartmentManager) -> DepartmentView:
        department = await handlers.register_department(body.code, body.name, body.level, body.parent_code, actor, uow)
        return DepartmentView.model_validate(department, from_attributes=True)

    @api.put("/departments/{code}", response_model=DepartmentView, summary="Rename, re-parent or dissolve")
    async def change_department(code: Code, body: DepartmentChangeBody, actor: DepartmentManager) -> DepartmentView:
        changed = await handlers.change_department(code, body.name, body.parent_code, body.active, actor, uow)
        return DepartmentView.model_validate(changed, from_attributes=True)

    @api.get("/departments/{code}", response_model=DepartmentView, summary="One department")
    async def department(code: Code, _: Reader) -> DepartmentView:
        found = await uow.department(code)
        if found is None:
            raise NotFound("code", f"no department {code}")
        return DepartmentView.model_validate(found, from_attributes=True)

    @api.get("/departments/{code}/people", response_model=list[PersonView], summary="A department's people")
    async def people(code: Code, actor: Reader) -> list[PersonView]:
        show_logins = handlers.may_see_logins(actor)
        return [_person_view(p, show_logins) for p in await uow.people(code)]

    @api.get(
        "/departments/{code}/data-administrators",
        response_model=list[AppointmentView],
        summary="Data administrators registered for the department, oldest first (Art. 22)",
    )
    async def administrators(code: Code, actor: Reader) -> list[AppointmentView]:
        names = {p.person_id: p.name for p in await uow.people(code)}
        show_logins = handlers.may_see_logins(actor)
        return [_appointment_view(a, names, show_logins) for a in await uow.appointments(code)]

    @api.post(
        "/departments/{code}/data-administrator",
        status_code=201,
        response_model=AppointmentView,
        summary="Register the department's data administrator; the predecessor is replaced",
    )
    async def appoint(code: Code, body: AppointmentBody, actor: Appointer) -> AppointmentView:
        appointment = await handlers.appoint_data_administrator(code, body.person_id, actor, uow)
        names = {p.person_id: p.name for p in await uow.people(code)}
        return _appointment_view(appointment, names, show_logins=True)  # the appointer administers people

    @api.post(
        "/people",
        status_code=201,
        response_model=IssuedSecretView,
        summary="Register a person; the initial password is shown once",
    )
    async def register_person(body: PersonBody, actor: PersonManager) -> IssuedSecretView:
        issued = await handlers.register_person(
            body.person_id, body.name, body.department_code, frozenset(body.roles), actor, uow, hasher
        )
        return IssuedSecretView(login=issued.login, secret=issued.secret)

    @api.get(
        "/people/{person_id}",
        response_model=PersonView,
        summary="One person: oneself, or anyone for those who administer people",
    )
    async def person(person_id: Code, actor: Reader) -> PersonView:
        # A person id is a login: to anyone else the answer is the same whether or not it exists.
        visible = actor.subject == person_id or handlers.may_see_logins(actor)
        found = await uow.person(person_id) if visible else None
        if found is None:
            raise NotFound("person_id", f"no person {person_id} you may see")
        return _person_view(found)

    @api.put("/people/{person_id}/roles", response_model=PersonView, summary="Set a person's roles")
    async def set_roles(person_id: Code, body: RolesBody, actor: PersonManager) -> PersonView:
        return _person_view(await handlers.set_roles(person_id, frozenset(body.roles), actor, uow))

    @api.post(
        "/people/{person_id}/reset-password",
        response_model=IssuedSecretView,
        summary="A new password, shown once; refresh tokens end",
    )
    async def reset_password(person_id: Code, actor: PersonManager) -> IssuedSecretView:
        issued = await handlers.reset_password(person_id, actor, uow, hasher, MongoRefreshTokens(uow.db))
        return IssuedSecretView(login=issued.login, secret=issued.secret)

    @api.post("/people/{person_id}/deactivate", status_code=204, summary="Deactivate a person; refresh tokens end")
    async def deactivate(person_id: Code, actor: PersonManager) -> None:
        await handlers.deactivate_person(person_id, actor, uow, MongoRefreshTokens(uow.db))

    @api.post("/people/{person_id}/reactivate", response_model=PersonView, summary="Undo a deactivation")
    async def reactivate(person_id: Code, body: ReactivationBody, actor: PersonManager) -> PersonView:
        return _person_view(await handlers.reactivate_person(person_id, body.reason, actor, uow))

    @api.post(
        "/machines",
        status_code=201,
        response_model=IssuedSecretView,
        summary="Issue a machine identity; the client secret is shown once",
    )
    async def issue_machine(body: MachineBody, actor: MachineManager) -> IssuedSecretView:
        issued = await handlers.issue_machine_identity(body.department_code, body.kind, actor, uow, hasher)
        return IssuedSecretView(login=issued.login, secret=issued.secret)

    @api.post("/machines/{client_id}/rotate", response_model=IssuedSecretView, summary="Issue a new client secret")
    async def rotate(client_id: Code, actor: MachineManager) -> IssuedSecretView:
        issued = await handlers.rotate_machine_secret(client_id, actor, uow, hasher)
        return IssuedSecretView(login=issued.login, secret=issued.secret)

    @api.post("/machines/{client_id}/revoke", status_code=204, summary="Revoke a machine identity")
    async def revoke(client_id: Code, body: RevokeBody, actor: MachineManager) -> None:
        await handlers.revoke_machine_identity(client_id, body.reason, actor, uow)

    @api.post(
        "/machines/{client_id}/keys",
        status_code=201,
        response_model=AdapterKeyView,
        summary="Register the public key an adapter signs its data changes with (`replaces`: rotate)",
    )
    async def register_key(client_id: Code, body: AdapterKeyBody, actor: MachineManager) -> AdapterKeyView:
        key = await handlers.register_adapter_key(
            client_id, body.public_key, body.replaces, actor, uow, datetime.now(UTC)
        )
        return AdapterKeyView.model_validate(key, from_attributes=True)

    @api.get("/machines/{client_id}/keys", response_model=list[AdapterKeyView], summary="An adapter's keys")
    async def keys_of(client_id: Code, actor: MachineManager) -> list[AdapterKeyView]:
        found = await handlers.adapter_keys(client_id, actor, uow)
        return [AdapterKeyView.model_validate(k, from_attributes=True) for k in found]

    @api.post(
        "/machines/{client_id}/keys/{key_id}/revoke",
        status_code=204,
        summary="Revoke an adapter's key: changes that reach the broker from now on signed with it are refused",
    )
    async def revoke_key(client_id: Code, key_id: Code, body: RevokeBody, actor: MachineManager) -> None:
        await handlers.revoke_adapter_key(client_id, key_id, body.reason, actor, uow, datetime.now(UTC))

    return api


async def too_many_attempts(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, login.TooManyAttempts)
    AUTH_FAILURES.labels("throttled").inc()
    return JSONResponse(
        {"detail": str(exc), "error": "TooManyAttempts"},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )
