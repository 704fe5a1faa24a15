import pytest

from tests.components.helpers import http_target


@pytest.fixture
def target():
    with http_target() as server:
        yield server
