"""Route guards: every REST route declares the access rule it obeys (common.policy); the guard
authenticates the bearer token and applies the rule's role part. Handlers add the department scope."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.auth import Unauthenticated
from common.metrics import AUTH_FAILURES
from common.policy import AccessDenied, Principal, Rule, authorize, rule

log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False, description="An access token from the directory's /token endpoint")


class Guard:
    """FastAPI dependency: `principal: Annotated[Principal, Depends(Guard("catalog.entry.draft"))]`."""

    def __init__(self, rule_name: str) -> None:
        self.rule = rule(rule_name)  # an unknown rule fails at import, not at the first request

    async def __call__(self, request: Request) -> Principal | None:
        if self.rule.public:
            return None
        credentials: HTTPAuthorizationCredentials | None = await _bearer(request)
        if credentials is None:
            raise Unauthenticated("missing bearer token")
        keys = request.app.state.runtime.keys
        if keys.verifier is None:
            raise Unauthenticated("signing keys not loaded yet; retry shortly")
        principal = keys.verifier.verify(credentials.credentials)
        request.app.state.runtime.revocations.check(principal)
        request.state.principal = principal  # known before the rule is applied: a refusal logs whom it refused
        authorize(principal, self.rule.name)
        return principal


def rule_of(dependant: Dependant) -> Rule | None:
    """The access rule a route declares through its Guard, if it declares one."""
    if isinstance(dependant.call, Guard):
        return dependant.call.rule
    return next((r for sub in dependant.dependencies if (r := rule_of(sub)) is not None), None)


async def unauthenticated(request: Request, exc: Exception) -> JSONResponse:
    reason = exc.reason if isinstance(exc, Unauthenticated) else str(exc)
    AUTH_FAILURES.labels("unauthenticated").inc()
    log.warning("refused credentials: %s", reason, extra={"path": request.url.path, "client": _client(request)})
    return JSONResponse(
        {"detail": reason, "error": "Unauthenticated"},
        status_code=401,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
    )


async def denied(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccessDenied)
    AUTH_FAILURES.labels("forbidden").inc()
    principal = getattr(request.state, "principal", None)
    log.warning(
        "access denied: %s",
        exc,
        extra={
            "path": request.url.path,
            "rule": exc.rule,
            "subject": getattr(principal, "subject", None),
            "department": getattr(principal, "department_code", None),
            "client": _client(request),
        },
    )
    body = {"detail": exc.reason, "rule": exc.rule, "error": "AccessDenied", "code": "access.denied"}
    body["message"] = f"无权执行此操作：访问规则 {exc.rule} 不允许您的角色或所在部门执行"
    return JSONResponse(body, status_code=403)


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None
