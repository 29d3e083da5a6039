"""The throughput benchmark's Messaging stand-in (bench/standin.py) keeps the contract the service uses.

It runs as its own process, as in the benchmark; the real Messaging client sends to it.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from campaignsvc.integrations.messaging import Delivered, MessagingClient, SendCommand

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench


@pytest.fixture
def standin() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.standin", "{}"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://"), url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def command(key: str, account: uuid.UUID) -> SendCommand:
    return SendCommand(
        organization_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        contact_id=uuid.uuid4(),
        bd_account_id=account,
        channel_id="7000000001",
        content="Hello",
        idempotency_key=key,
        correlation_id=key,
    )


def test_the_service_client_sends_and_replays(standin: str) -> None:
    account = uuid.uuid4()
    first = command("k1", account)

    async def main() -> list[object]:
        client = MessagingClient(standin, timeout_s=5)
        try:
            a = await client.send(first)
            b = await client.send(first)  # same key, same organization: the first row again
            c = await client.send(command("k2", account))
            return [a, b, c]
        finally:
            await client.aclose()

    a, b, c = trio.run(main)
    assert isinstance(a, Delivered) and isinstance(b, Delivered) and isinstance(c, Delivered)
    assert a.message_id is not None and a.channel_id == "7000000001"
    assert b.message_id == a.message_id
    assert c.message_id not in (None, a.message_id)

    with httpx.Client(base_url=standin) as http:
        items = http.get("/sandbox/received").json()["items"]
        stats = http.get("/sandbox/stats").json()
    assert [i["idempotencyKey"] for i in items] == ["k1", "k1", "k2"]
    assert [i["replay"] for i in items] == [False, True, False]
    assert all(i["bdAccountId"] == str(account) for i in items)
    assert items[0]["received_mono"] <= items[1]["received_mono"] <= items[2]["received_mono"]
    assert stats["requests"] == 3 and stats["replays"] == 1
    assert stats["accounts"] == {str(account): {"requests": 3}}
    assert [i["outcome"] for i in items] == ["sent", "replay", "sent"]


def test_keep_alive_and_refusals(standin: str) -> None:
    body = {"channel": "telegram", "channelId": "1", "content": "x", "bdAccountId": str(uuid.uuid4())}
    with httpx.Client(base_url=standin, limits=httpx.Limits(max_connections=1)) as http:
        for i in range(50):
            response = http.post("/api/messaging/send", json={**body, "idempotencyKey": f"k{i}"})
            assert response.status_code == 200
            assert uuid.UUID(response.json()["id"])
        assert http.post("/api/messaging/send", json={**body, "channel": "sms"}).status_code == 400
        assert http.post("/api/messaging/send", json={**body, "bdAccountId": None}).status_code == 400
        assert http.post("/api/messaging/send", json={**body, "content": ""}).status_code == 400
        assert http.post("/api/messaging/send", content=b"not json").status_code == 400
        assert http.get("/nowhere").status_code == 404
        stats = http.get("/sandbox/stats").json()
    assert stats["connections"] == 1, "every request rode the one keep-alive connection"
    assert stats["requests"] == 54 and stats["rejected"] == 4
    with httpx.Client(base_url=standin) as http:
        http.post("/sandbox/reset").raise_for_status()
        assert http.get("/sandbox/stats").json() == {
            "requests": 0,
            "connections": 0,
            "replays": 0,
            "rejected": 0,
            "accounts": {},
        }
