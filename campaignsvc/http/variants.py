"""A/B variants of a step (docs/semantics.md, "A/B variants"): add and remove them while the campaign is
not active, and see per step and arm what the sends became, with the winner once one is decided.

A variant's template must be a template of the campaign (as a step's own); a step has at most
:data:`~campaignsvc.domain.variants.MAX_VARIANTS` besides its control.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from quart import Blueprint

from campaignsvc.domain import variants as v
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import bad_request, conflict, not_found
from campaignsvc.http.models.variants import StepVariant, VariantCreate, VariantsAnalytics, VariantsQuery
from campaignsvc.http.scope import campaign_or_404, in_campaign
from campaignsvc.http.sequences import FOREIGN_TEMPLATE, STEP_NOT_FOUND
from campaignsvc.http.templates import refuse_if_active
from campaignsvc.storage import sequences as steps_db
from campaignsvc.storage import variants as db

bp = Blueprint("variants", __name__, url_prefix="/api/campaigns")

VARIANT_NOT_FOUND = "Variant not found"
TOO_MANY = f"A step has at most {v.MAX_VARIANTS} variants besides its own template"


@endpoint(
    bp,
    "POST",
    "/<campaignId>/sequences/<stepId>/variants",
    summary="Add an A/B variant to a step of a campaign that is not active",
    body=VariantCreate,
    response=StepVariant,
    status=201,
    errors=(404, 409),
)
async def add_variant(campaignId: uuid.UUID, stepId: uuid.UUID, body: VariantCreate) -> dict[str, Any]:
    who = ident.current()
    org = who.organization_id

    async def run(conn: asyncpg.Connection) -> asyncpg.Record:
        campaign = await campaign_or_404(conn, org, campaignId, lock=True)
        if not await steps_db.exists(conn, org, campaignId, stepId):
            raise not_found(STEP_NOT_FOUND)
        refuse_if_active(campaign)
        if not await steps_db.template_of_campaign(conn, org, campaignId, body.templateId):
            raise bad_request(FOREIGN_TEMPLATE, [{"path": "templateId", "message": FOREIGN_TEMPLATE}])
        if await db.count(conn, stepId) >= v.MAX_VARIANTS:
            raise conflict(TOO_MANY)
        return await db.create(conn, org, stepId, body.templateId, body.weight)

    return dict((await services().store.run(run)).items())


@endpoint(
    bp,
    "DELETE",
    "/<campaignId>/sequences/<stepId>/variants/<variantId>",
    summary="Remove an A/B variant of a step of a campaign that is not active (its sends stay attributed)",
    status=204,
    errors=(404, 409),
)
async def delete_variant(campaignId: uuid.UUID, stepId: uuid.UUID, variantId: uuid.UUID) -> None:
    who = ident.current()
    org = who.organization_id

    async def run(conn: asyncpg.Connection) -> None:
        campaign = await campaign_or_404(conn, org, campaignId, lock=True)
        if not await steps_db.exists(conn, org, campaignId, stepId):
            raise not_found(STEP_NOT_FOUND)
        refuse_if_active(campaign)
        if not await db.delete(conn, stepId, variantId):
            raise not_found(VARIANT_NOT_FOUND)

    await services().store.run(run)


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _arm_json(
    counts: db.ArmCounts | None,
    *,
    variant_id: uuid.UUID | None,
    template_id: uuid.UUID | None,
    template_name: str | None,
    weight: int,
    removed: bool = False,
) -> dict[str, Any]:
    sent = counts.sent if counts else 0
    replied = counts.replied if counts else 0
    positive = counts.positive if counts else 0
    unsubscribed = counts.unsubscribed if counts else 0
    return {
        "variantId": variant_id,
        "templateId": template_id,
        "templateName": template_name,
        "weight": weight,
        "removed": removed,
        "sent": sent,
        "replied": replied,
        "positive": positive,
        "unsubscribed": unsubscribed,
        "replyRate": _rate(replied, sent),
        "positiveRate": _rate(positive, sent),
        "unsubscribeRate": _rate(unsubscribed, sent),
    }


def step_stats(
    index: int, step: Mapping[str, Any], counts: Sequence[db.ArmCounts], min_sample: int
) -> dict[str, Any]:
    """One step's arms (the control first, then its variants, then variants removed since their sends)
    with their counts and rates, and the winner if one is decided."""
    mine = {c.variant_id: c for c in counts if c.step_key == step["step_key"]}
    arms = [v.Arm(variant_id=None, template_id=step["template_id"], weight=v.CONTROL_WEIGHT)]
    names: dict[uuid.UUID | None, str | None] = {None: step["template_name"]}
    for raw in step["variants"]:
        arm = v.Arm(
            variant_id=uuid.UUID(str(raw["id"])),
            template_id=uuid.UUID(str(raw["template_id"])),
            weight=int(raw["weight"]),
        )
        arms.append(arm)
        names[arm.variant_id] = raw["template_name"]
    out = [
        _arm_json(
            mine.get(a.variant_id),
            variant_id=a.variant_id,
            template_id=a.template_id,
            template_name=names[a.variant_id],
            weight=a.weight,
        )
        for a in arms
    ]
    current = {a.variant_id for a in arms}
    for variant_id, c in sorted(mine.items(), key=lambda kv: str(kv[0])):
        if variant_id not in current:
            out.append(
                _arm_json(
                    c, variant_id=variant_id, template_id=None, template_name=None, weight=0, removed=True
                )
            )
    won = v.winner(
        v.outcomes_of(
            arms,
            {k: c.sent for k, c in mine.items()},
            {k: c.positive for k, c in mine.items()},
        ),
        min_sample=min_sample,
    )
    return {
        "stepId": step["id"],
        "index": index,
        "orderIndex": step["order_index"],
        "autoWinner": step["auto_winner"],
        "arms": out,
        "winner": None if won is None else {"variantId": won.variant_id, "templateId": won.template_id},
    }


@endpoint(
    bp,
    "GET",
    "/<id>/analytics/variants",
    summary="A/B variants: per step and arm, sends, replies, positive replies, unsubscribes and the winner",
    query=VariantsQuery,
    response=VariantsAnalytics,
    errors=(404,),
)
async def variants_analytics(id: uuid.UUID, query: VariantsQuery) -> dict[str, Any]:
    async def run(conn: asyncpg.Connection, org: uuid.UUID) -> tuple[list[Any], list[db.ArmCounts]]:
        steps = await db.steps_with_variants(conn, org, id)
        counts = await db.outcomes(conn, id, [s["step_key"] for s in steps])
        return steps, counts

    steps, counts = await in_campaign(id, run)
    return {
        "campaignId": id,
        "minSample": query.minSample,
        "steps": [step_stats(i, s, counts, query.minSample) for i, s in enumerate(steps)],
    }
