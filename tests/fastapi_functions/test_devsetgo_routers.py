"""``dsg_lib.fastapi_functions``: devsetgo-lib's robots.txt and health routers."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import pytest

fastapi = pytest.importorskip("fastapi", reason="the fastapi extra is not installed")
from fastapi import Depends, FastAPI, Header, HTTPException  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from dsg_lib.fastapi_functions import default_endpoints, system_health_endpoints  # noqa: E402


def test_robots_txt_lists_each_bot() -> None:
    app = FastAPI()
    bots = [
        {"bot": "GPTBot", "allow": False},
        {"bot": "ClaudeBot", "allow": True},
        {"bot": "NoFlag"},
        {"allow": False},
    ]
    app.include_router(default_endpoints.create_default_router(bots))
    response = TestClient(app).get("/robots.txt")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.splitlines() == [
        "User-agent: *",
        "User-agent: GPTBot",
        "Disallow: /",
        "User-agent: ClaudeBot",
        "Allow: /",
        "User-agent: NoFlag",
        "Allow: /",
    ]


async def require_key(x_api_key: str = Header(...)) -> None:
    if x_api_key != "right":
        raise HTTPException(status_code=401, detail="Unauthorized")


@pytest.fixture
def _stop_tracing() -> Iterator[None]:
    was_tracing = tracemalloc.is_tracing()
    yield
    if not was_tracing:
        tracemalloc.stop()  # tracing slows every allocation of the rest of the run


@pytest.mark.usefixtures("_stop_tracing")
def test_health_router_endpoints_and_guarded_heapdump() -> None:
    app = FastAPI()
    config = {"enable_heapdump_endpoint": True, "heapdump_dependencies": [Depends(require_key)]}
    app.include_router(system_health_endpoints.create_health_router(config), prefix="/api/health")
    client = TestClient(app)
    assert client.get("/api/health/status").json() == {"status": "UP"}
    assert set(client.get("/api/health/uptime").json()["uptime"]) == {"Days", "Hours", "Minutes", "Seconds"}
    assert client.get("/api/health/heapdump", headers={"x-api-key": "wrong"}).status_code == 401
    dump = client.get("/api/health/heapdump", headers={"x-api-key": "right"}).json()
    assert dump["memory_use"]["peak"] >= dump["memory_use"]["current"] > 0
    assert all({"filename", "lineno", "size", "count"} <= set(line) for line in dump["heap_dump"])


def test_health_endpoints_can_be_disabled_and_heapdump_is_opt_in() -> None:
    app = FastAPI()
    app.include_router(system_health_endpoints.create_health_router({"enable_status_endpoint": False}))
    client = TestClient(app)
    assert client.get("/status").status_code == 404
    assert client.get("/heapdump").status_code == 404
    assert client.get("/uptime").status_code == 200


def test_uptime_breakdown() -> None:
    parts = system_health_endpoints.uptime(time.time() - (2 * 86400 + 3 * 3600 + 4 * 60 + 5))["uptime"]
    assert (parts["Days"], parts["Hours"], parts["Minutes"]) == (2, 3, 4)
    assert 5 <= parts["Seconds"] < 6
