"""CRM rows for tests: an organization with its people, accounts, contacts and pipeline."""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any

import attrs

from campaignsvc.storage import seed
from campaignsvc.storage.store import Store

# Distinct Telegram ids for the contacts a process makes (random ids collided now and then in the
# 3,000-contact scenarios: the CRM keeps them unique per organization).
_TELEGRAM_IDS = itertools.count(7_000_000_000 + random.randrange(10**6) * 1_000)


@attrs.define
class Org:
    id: uuid.UUID
    owner_id: uuid.UUID
    store: Store

    def headers(self, role: str = "owner", user_id: uuid.UUID | None = None) -> dict[str, str]:
        return {
            "X-Organization-Id": str(self.id),
            "X-User-Id": str(user_id or self.owner_id),
            "X-User-Role": role,
        }

    async def user(self, role: str = "bidi", **kw: Any) -> uuid.UUID:
        email = kw.pop("email", f"{role}-{uuid.uuid4().hex[:8]}@example.test")
        return await self.store.run(seed.user, organization_id=self.id, email=email, role=role, **kw)

    async def bd_account(self, **columns: Any) -> uuid.UUID:
        return await self.store.run(seed.bd_account, organization_id=self.id, **columns)

    async def company(self, name: str = "Acme") -> uuid.UUID:
        return await self.store.run(seed.company, organization_id=self.id, name=name)

    async def contacts(self, count: int = 1, **common: Any) -> list[uuid.UUID]:
        """``count`` contacts with a telegram id each (override any column through ``common``)."""
        rows = []
        for i in range(count):
            row = {
                "first_name": f"Contact{i}",
                "last_name": "Test",
                "telegram_id": str(next(_TELEGRAM_IDS)),
            }
            row.update(common)
            rows.append(row)
        return await self.store.run(seed.contacts, organization_id=self.id, rows=rows)

    async def contact(self, **columns: Any) -> uuid.UUID:
        columns.setdefault("first_name", "Ann")
        return (await self.store.run(seed.contacts, organization_id=self.id, rows=[columns]))[0]

    async def pipeline(self, name: str = "Sales", stages: tuple[str, ...] = ("Lead", "Qualified", "Won")):
        return await self.store.run(seed.pipeline, organization_id=self.id, name=name, stages=stages)


async def make_org(store: Store, name: str = "Test Org") -> Org:
    org_id = await store.run(seed.organization, name=name)
    owner = await store.run(
        seed.user,
        organization_id=org_id,
        email=f"owner-{uuid.uuid4().hex[:8]}@example.test",
        role="owner",
        first_name="Olga",
        last_name="Owner",
    )
    return Org(id=org_id, owner_id=owner, store=store)
