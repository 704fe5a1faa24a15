import pytest

from tests.healing import helpers


@pytest.fixture(autouse=True)
def _clean_records():
    helpers.calls.clear()
    helpers.gate.clear()
    yield
    helpers.gate.clear()
