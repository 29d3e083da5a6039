"""The throughput scenario's headline baseline: what a generic job queue does per send, in plain asyncio.

    python -m bench.naive_loop '{"dsn": ..., "url": ..., "sends": 5000, "accounts": 100, "workers": 16}'

``workers`` concurrent asyncio tasks (16), each on its own asyncpg connection, take jobs from one in-memory
queue and do, per send: a claim (one single-row autocommit ``INSERT … ON CONFLICT DO NOTHING`` into a
minimal ledger table keyed by (participant, step)), one ``POST /api/messaging/send`` to the Messaging
stand-in through one shared ``httpx.AsyncClient`` (the service's headers and body), and the outcome (one
single-row autocommit ``UPDATE``). No trio, no trio-asyncio, no pacing, no Telegram awareness: this module
imports neither, and runs in its own process so nothing of the benchmark's interpreter is in its way.

Protocol on stdin/stdout, so the parent measures CPU over exactly the work: the process connects and
creates its table, prints ``{"ready": true, ...}``, waits for a line on stdin, runs every send, prints
``{"sends": ..., "elapsed_s": ..., "cpu_s": ...}`` (its own CPU over the run) and exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import collections
import json
import resource
import sys
import time
import uuid
from typing import Any

import asyncpg
import httpx

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS naive_ledger (
    id             bigserial PRIMARY KEY,
    participant_id uuid NOT NULL,
    step           int NOT NULL,
    bd_account_id  uuid NOT NULL,
    status         text NOT NULL,
    message_id     uuid,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    UNIQUE (participant_id, step)
)
"""
CLAIM_SQL = """
INSERT INTO naive_ledger (participant_id, step, bd_account_id, status) VALUES ($1, $2, $3, 'sending')
ON CONFLICT (participant_id, step) DO NOTHING RETURNING id
"""
OUTCOME_SQL = "UPDATE naive_ledger SET status = $2, message_id = $3, finished_at = now() WHERE id = $1"
APPLICATION_NAME = "bench-naive-loop"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _jobs(sends: int, accounts: int) -> collections.deque[dict[str, Any]]:
    """One job per send, accounts interleaved as the product's campaigns interleave them."""
    account_ids = [uuid.uuid4() for _ in range(accounts)]
    base = 7_000_000_000 + uuid.uuid4().int % 10**8 * 10
    return collections.deque(
        {
            "participant": uuid.uuid4(),
            "contact": uuid.uuid4(),
            "account": account_ids[i % accounts],
            "channel_id": str(base + i),
            "content": f"Hello Contact{i} #0",
        }
        for i in range(sends)
    )


async def _run(spec: dict[str, Any]) -> None:
    workers = int(spec.get("workers", 16))
    conns = [
        await asyncpg.connect(spec["dsn"], server_settings={"application_name": APPLICATION_NAME})
        for _ in range(workers)
    ]
    await conns[0].execute(LEDGER_DDL)
    jobs = _jobs(int(spec["sends"]), int(spec["accounts"]))
    org = str(spec.get("organization_id") or uuid.uuid4())
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(
        base_url=spec["url"], limits=limits, timeout=httpx.Timeout(30.0, connect=10.0)
    ) as http:
        print(json.dumps({"ready": True, "workers": workers, "jobs": len(jobs)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        sent = failed = skipped = 0

        async def worker(conn: asyncpg.Connection) -> None:
            nonlocal sent, failed, skipped
            while jobs:
                job = jobs.popleft()
                send_id = await conn.fetchval(CLAIM_SQL, job["participant"], 0, job["account"])
                if send_id is None:
                    skipped += 1
                    continue
                key = f"naive:{job['participant']}:step:0"
                response = await http.post(
                    "/api/messaging/send",
                    json={
                        "contactId": str(job["contact"]),
                        "channel": "telegram",
                        "channelId": job["channel_id"],
                        "content": job["content"],
                        "bdAccountId": str(job["account"]),
                        "source": "campaign",
                        "idempotencyKey": key,
                    },
                    headers={"x-organization-id": org, "x-correlation-id": key},
                )
                message_id = None
                if response.status_code == 200:
                    message_id = uuid.UUID(response.json()["id"])
                    sent += 1
                else:
                    failed += 1
                await conn.execute(OUTCOME_SQL, send_id, "sent" if message_id else "failed", message_id)

        cpu0, t0 = _cpu_s(), time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        elapsed, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    print(
        json.dumps(
            {
                "sends": sent,
                "failed": failed,
                "skipped": skipped,
                "elapsed_s": elapsed,
                "cpu_s": cpu,
                "loop": type(asyncio.get_running_loop()).__name__,
            }
        ),
        flush=True,
    )
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for conn in conns:
        await conn.close()


def main(argv: list[str]) -> None:
    asyncio.run(_run(json.loads(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
