"""The one error root. Each subclass maps to one HTTP status in ``opsconsole.api``."""

from typing import Any


class OpsError(Exception):
    """A user-facing failure: a readable message, a stable code and extra detail."""

    status = 400
    default_code = "error"

    def __init__(
        self, message: str, code: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}


class AuthenticationFailed(OpsError):
    status = 401
    default_code = "not_authenticated"


class PermissionDenied(OpsError):
    status = 403
    default_code = "permission_denied"


class NotFound(OpsError):
    status = 404
    default_code = "not_found"


class Conflict(OpsError):
    status = 409
    default_code = "conflict"


class PreconditionFailed(OpsError):
    status = 412
    default_code = "precondition_failed"


class ValidationFailed(OpsError):
    """Bad input; ``fields`` maps a field path to its messages."""

    status = 422
    default_code = "validation_failed"

    def __init__(
        self, fields: dict[str, list[str]], message: str | None = None
    ) -> None:
        summary = message or "; ".join(
            f"{path}: {' '.join(msgs)}" for path, msgs in fields.items()
        )
        super().__init__(summary, extra={"fields": fields})
        self.fields = fields


class DependencyUnavailable(OpsError):
    status = 503
    default_code = "dependency_unavailable"
