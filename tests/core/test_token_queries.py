"""Token auth is the API's hot path: one query finds the token, its user and roles."""

import pytest
from django.test import RequestFactory

from apps.core.auth import TokenAuth
from apps.core.roles import OPERATOR, VIEWER
from tests.factories import make_token, make_user


@pytest.mark.django_db
def test_token_auth__recently_used_token__one_query_with_role_scopes(
    django_assert_num_queries,
):
    _, raw = make_token(user=make_user(role=OPERATOR), scopes=("read", "write"))
    request = RequestFactory().get("/api/v1/me")
    TokenAuth().authenticate(request, raw)  # touches last_used_at once

    with django_assert_num_queries(1):
        principal = TokenAuth().authenticate(request, raw)

    assert principal.scopes == frozenset({"read", "write"})


@pytest.mark.django_db
def test_token_auth__role_taken_away__scope_goes_at_once():
    user = make_user(role=OPERATOR)
    _, raw = make_token(user=user, scopes=("read", "write"))
    request = RequestFactory().get("/api/v1/me")
    assert "write" in TokenAuth().authenticate(request, raw).scopes

    user.groups.remove(user.groups.get(name=OPERATOR))
    user.groups.add(user.groups.model.objects.get(name=VIEWER))

    assert TokenAuth().authenticate(request, raw).scopes == frozenset({"read"})
