"""The demo organization: seeded once into the demo database, remembered in ``<data dir>/demo.json``.

A later run reuses it when the service still knows its accounts (checked over the API), else seeds a new
one; ``--fresh`` always seeds anew (on the embedded server it also starts from an empty database).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import attrs

from campaignsvc.demo import plan
from campaignsvc.storage import seed
from campaignsvc.storage.store import Store

STATE_FILE = "demo.json"


@attrs.define
class DemoOrg:
    organization_id: uuid.UUID
    owner_id: uuid.UUID
    accounts: dict[str, uuid.UUID]  # AccountSpec.key → id
    contacts: list[uuid.UUID]  # in plan.contact_rows() order
    pipeline_id: uuid.UUID
    stages: dict[str, uuid.UUID]
    runs: int = 0

    def headers(self) -> dict[str, str]:
        return {
            "X-Organization-Id": str(self.organization_id),
            "X-User-Id": str(self.owner_id),
            "X-User-Role": "owner",
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "organization_id": str(self.organization_id),
            "owner_id": str(self.owner_id),
            "accounts": {k: str(v) for k, v in self.accounts.items()},
            "contacts": [str(c) for c in self.contacts],
            "pipeline_id": str(self.pipeline_id),
            "stages": {k: str(v) for k, v in self.stages.items()},
            "runs": self.runs,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DemoOrg:
        return cls(
            organization_id=uuid.UUID(data["organization_id"]),
            owner_id=uuid.UUID(data["owner_id"]),
            accounts={k: uuid.UUID(v) for k, v in data["accounts"].items()},
            contacts=[uuid.UUID(c) for c in data["contacts"]],
            pipeline_id=uuid.UUID(data["pipeline_id"]),
            stages={k: uuid.UUID(v) for k, v in data["stages"].items()},
            runs=int(data.get("runs", 0)),
        )


def load(data_dir: Path) -> DemoOrg | None:
    path = data_dir / STATE_FILE
    try:
        return DemoOrg.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(data_dir: Path, org: DemoOrg) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(org.to_json(), indent=1))
    tmp.replace(path)


async def _seed(conn: asyncpg.Connection) -> DemoOrg:
    org_id = await seed.organization(conn, name="Demo Outreach Co")
    owner = await seed.user(
        conn,
        organization_id=org_id,
        email=f"owner-{org_id.hex[:8]}@demo.example.test",
        role="owner",
        first_name="Olga",
        last_name="Owner",
    )
    accounts = {}
    for spec in plan.ACCOUNTS:
        accounts[spec.key] = await seed.bd_account(
            conn,
            organization_id=org_id,
            first_name=spec.first_name,
            last_name=spec.last_name,
            display_name=f"{spec.first_name} {spec.last_name}",
            username=spec.username,
            max_dm_per_day=spec.daily_cap,
            created_by_user_id=owner,
            is_demo=True,
        )
    companies = [await seed.company(conn, organization_id=org_id, name=n) for n in plan.company_names()]
    rows = plan.contact_rows()
    contacts = await seed.contacts(
        conn,
        organization_id=org_id,
        rows=[
            {
                **{k: v for k, v in row.items() if k != "company"},
                "company_id": None if row["company"] is None else companies[row["company"]],
            }
            for row in rows
        ],
    )
    pipeline_id, stage_ids = await seed.pipeline(
        conn, organization_id=org_id, name="Sales", stages=plan.PIPELINE
    )
    stages = dict(zip(plan.PIPELINE, stage_ids, strict=True))
    for index, contact_id in enumerate(contacts):
        stage = plan.lead_stage(index)
        if stage is not None:
            await seed.lead(
                conn,
                organization_id=org_id,
                contact_id=contact_id,
                pipeline_id=pipeline_id,
                stage_id=stages[stage],
            )
    return DemoOrg(org_id, owner, accounts, contacts, pipeline_id, stages)


async def seed_demo_org(dsn: str) -> DemoOrg:
    """Insert a new demo organization in one transaction."""
    async with Store.open(dsn, min_size=1, max_size=1) as store:
        return await store.run(_seed)
