import pytest

from opsconsole.embedded import EmbeddedValkey, free_port

pytestmark = [pytest.mark.fault, pytest.mark.django_db]


def test_readyz__redis_goes_away_and_returns__503_naming_redis_then_200(
    client, settings, tmp_path
):
    valkey = EmbeddedValkey(tmp_path / "valkey", free_port())
    valkey.start()
    settings.REDIS_URL = valkey.url
    try:
        assert client.get("/readyz").status_code == 200
        valkey.stop()

        response = client.get("/readyz")
        body = response.json()
        assert response.status_code == 503
        assert body["status"] == "fail"
        assert body["failed"] == ["redis"]
        assert body["checks"]["redis"]["error"]
        assert body["checks"]["postgresql"]["status"] == "pass"

        valkey.start()
        assert client.get("/readyz").status_code == 200
    finally:
        valkey.stop()


def test_readyz__postgres_unreachable__503_naming_postgresql_without_dsn(
    client, settings
):
    settings.DATABASES = {
        "default": {
            **settings.DATABASES["default"],
            "PORT": str(free_port()),
            "PASSWORD": "hunter2-secret",
        }
    }
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["failed"] == ["postgresql"]
    assert body["checks"]["redis"]["status"] == "pass"
    assert "hunter2" not in response.content.decode()


def test_readyz__redis_hangs__answers_within_probe_timeout(client, settings):
    import socket
    import time

    # A listener that accepts nothing: connects hang until the timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    settings.OPSCONSOLE_PROBE_TIMEOUT = 0.5
    try:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert response.status_code == 503
    assert response.json()["failed"] == ["redis"]
    assert elapsed < 5
