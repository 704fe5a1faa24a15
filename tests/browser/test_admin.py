"""The admin through a real browser and the real ASGI server: login, roles, styling."""

import re
import secrets

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from apps.core.roles import OPERATOR, VIEWER

# daphne is another process: users must be committed, and the flush after each test
# must put back the roles the data migration made (serialized_rollback) for later tests.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LOGIN_ERROR = (
    "Please enter the correct username and password for a staff account. "
    "Note that both fields may be case-sensitive."
)


def _staff_user(role: str) -> tuple[str, str]:
    """A committed staff user in the ``role`` group; its username and password."""
    username = f"{role}-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    user = User.objects.create_user(username, password=password, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return username, password


def _log_in(page: Page, username: str, password: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_admin_login__operator_right_password__styled_operations_console_index(
    page: Page, web: str
):
    username, password = _staff_user(OPERATOR)

    _log_in(page, username, password)

    expect(page).to_have_url(f"{web}/admin/")
    expect(page).to_have_title("Operations console | opsconsole")
    expect(page.locator("#site-name")).to_have_text("opsconsole")
    expect(page.locator("#content h1")).to_have_text("Operations console")
    expect(page.locator("#user-tools strong")).to_have_text(username)
    # base.css paints the header; without it the browser's default is transparent.
    header_bg = page.locator("#header").evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert header_bg not in ("rgba(0, 0, 0, 0)", "transparent")
    base_css_rules = page.evaluate(
        """() => [...document.styleSheets]
            .filter(s => s.href && s.href.includes('/admin/css/base'))
            .map(s => s.cssRules.length)"""
    )
    assert base_css_rules, "admin/css/base.css is not linked"
    assert base_css_rules[0] > 0


def test_admin_login__wrong_password__error_shown_and_stays_on_login(
    page: Page, web: str
):
    username, password = _staff_user(OPERATOR)

    _log_in(page, username, password + "-wrong")

    expect(page.locator(".errornote")).to_have_text(LOGIN_ERROR)
    expect(page).to_have_url(re.compile(re.escape(f"{web}/admin/login/")))
    expect(page.get_by_label("Username")).to_have_value(username)
    assert "sessionid" not in {c["name"] for c in page.context.cookies()}


def test_admin_index__anonymous__redirected_to_login(page: Page, web: str):
    response = page.goto("/admin/")

    assert response is not None
    assert response.status == 200
    redirect = response.request.redirected_from
    assert redirect is not None
    assert redirect.url == f"{web}/admin/"
    assert redirect.response().status == 302
    expect(page).to_have_url(f"{web}/admin/login/?next=/admin/")
    expect(page).to_have_title("Log in | opsconsole")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_admin_index__viewer__sees_api_tokens_read_only(page: Page, web: str):
    username, password = _staff_user(VIEWER)

    _log_in(page, username, password)

    expect(page).to_have_url(f"{web}/admin/")
    tokens = page.locator("#content-main tr", has_text="API tokens")
    expect(tokens).to_have_count(1)
    expect(tokens.locator("a.viewlink")).to_be_visible()
    expect(page.locator("#content-main a.addlink")).to_have_count(0)
    expect(page.locator("#content-main a.changelink")).to_have_count(0)
    response = page.goto("/admin/core/apitoken/add/")
    assert response is not None
    assert response.status == 403


def test_admin_index__operator__can_add_api_tokens(page: Page, web: str):
    username, password = _staff_user(OPERATOR)

    _log_in(page, username, password)

    tokens = page.locator("#content-main tr", has_text="API tokens")
    expect(tokens.locator("a.addlink")).to_be_visible()
    expect(tokens.locator("a.changelink")).to_be_visible()
