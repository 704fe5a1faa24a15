"""What the flags API modules share: pagination, scope and permission checks, ETags."""

from django.http import HttpRequest, HttpResponse
from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination
from ninja.responses import Status

from apps.core.auth import Principal, require_perm, require_scope
from apps.core.exceptions import ValidationFailed
from apps.core.models import Scope
from apps.flags.models import ChangeRequest, Flag
from apps.flags.services import FlagChange


class Pagination(LimitOffsetPagination):
    class Input(Schema):
        limit: int = Field(50, ge=1, le=200)
        offset: int = Field(0, ge=0)


def reader(request: HttpRequest) -> None:
    require_scope(request, Scope.READ)
    require_perm(request, "flags.view_flag")


def writer(request: HttpRequest, perm: str = "flags.change_flag") -> Principal:
    require_scope(request, Scope.WRITE)
    return require_perm(request, perm)


def if_match(request: HttpRequest) -> int | None:
    """The flag version named by ``If-Match`` (``"3"`` or ``W/"3"``), if sent."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tag = header.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ValidationFailed(
            fields={"If-Match": ['send the ETag of a flag: "<version>"']}
        )
    return int(tag)


def tagged(response: HttpResponse, flag: Flag) -> Flag:
    response.headers["ETag"] = f'"{flag.version}"'
    return flag


def changed(response: HttpResponse, change: FlagChange) -> Status[Flag | ChangeRequest]:
    if isinstance(change, ChangeRequest):
        return Status(202, change)
    return Status(200, tagged(response, change))
