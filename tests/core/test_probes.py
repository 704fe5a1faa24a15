import pytest


@pytest.mark.django_db
def test_livez__always__200(client):
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "pass"}


@pytest.mark.django_db
def test_readyz__postgres_and_redis_up__200(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["postgresql"]["status"] == "pass"
    assert body["checks"]["redis"]["status"] == "pass"
