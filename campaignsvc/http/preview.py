"""Per-contact preview of every step and the AI variant stub (SPEC R-API-3, R-SEQ-3, R-TPL).

The preview says, step by step, what one contact of the organization would receive: hidden steps and
steps whose conditions fail are skipped, a template that needs data the contact lacks is skipped with
``missing_data``. Spintax choices come from a random generator seeded by (campaign, contact, step), so a
preview is stable. ``{{ai.personalize}}`` goes through the personaliser, and variants through the
variant generator; both are the stubs unless the app config names others (``AI_PERSONALISER``,
``AI_VARIANT_GENERATOR``).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from quart import Blueprint, current_app

from campaignsvc.domain import variants
from campaignsvc.domain.conditions import Facts, evaluate
from campaignsvc.domain.templates import (
    Personaliser,
    RenderContext,
    Rendered,
    StubPersonaliser,
    TemplateError,
    parse,
    render,
)
from campaignsvc.http import identity as ident
from campaignsvc.http.api import endpoint
from campaignsvc.http.context import services
from campaignsvc.http.errors import not_found, validation
from campaignsvc.http.models.preview import Preview, PreviewQuery, VariantOut, VariantRequest
from campaignsvc.http.scope import campaign_or_404
from campaignsvc.integrations.ai import StubVariantGenerator, VariantGenerator
from campaignsvc.storage import preview as db
from campaignsvc.storage import sequences as steps_db
from campaignsvc.storage import templates as templates_db
from campaignsvc.storage import variants as variants_db

bp = Blueprint("preview", __name__, url_prefix="/api/campaigns")

CONTACT_FIELDS = ("first_name", "last_name", "display_name", "username", "email", "phone", "telegram_id")


def personaliser() -> Personaliser:
    return current_app.config.get("AI_PERSONALISER") or StubPersonaliser(
        services().settings.ai_personalize_text
    )


def variant_generator() -> VariantGenerator:
    return current_app.config.get("AI_VARIANT_GENERATOR") or StubVariantGenerator()


def failed_condition(conditions: Any, facts: Facts) -> str:
    """The path of the first condition group (or contact rule) that does not hold."""
    if not isinstance(conditions, Mapping):
        return "conditions"
    parts: list[tuple[str, dict[str, Any]]] = []
    if "stopIfReplied" in conditions:
        parts.append(("conditions.stopIfReplied", {"stopIfReplied": conditions["stopIfReplied"]}))
    rules = conditions.get("contact")
    if isinstance(rules, list):
        parts += [(f"conditions.contact.{i}", {"contact": [rule]}) for i, rule in enumerate(rules)]
    elif rules is not None:
        parts.append(("conditions.contact", {"contact": rules}))
    for key in ("inPipelineStage", "notInPipelineStage"):
        if conditions.get(key) is not None:
            parts.append((f"conditions.{key}", {key: conditions[key]}))
    for path, part in parts:
        if not evaluate(part, facts):
            return path
    return "conditions"


def step_arms(step: Mapping[str, Any]) -> tuple[variants.Arm, ...]:
    """A step row's arms (storage/sequences rows: ``variants`` JSON), the control first."""
    control = variants.Arm(variant_id=None, template_id=step["template_id"], weight=variants.CONTROL_WEIGHT)
    return (
        control,
        *(
            variants.Arm(
                variant_id=uuid.UUID(str(v["id"])),
                template_id=uuid.UUID(str(v["templateId"])),
                weight=v["weight"],
            )
            for v in step["variants"]
        ),
    )


def step_rng(campaign_id: uuid.UUID, contact_id: uuid.UUID, step_id: uuid.UUID) -> random.Random:
    return random.Random(f"{campaign_id}:{contact_id}:{step_id}")


async def _preview(campaign_id: uuid.UUID, contact_id: uuid.UUID) -> dict[str, Any]:
    who = ident.current()
    org = who.organization_id

    async def load(conn: asyncpg.Connection) -> tuple[Any, ...]:
        await campaign_or_404(conn, org, campaign_id)
        contact = await db.contact(conn, org, contact_id)
        if contact is None:
            raise not_found("Contact not found")
        steps = await steps_db.list_for_campaign(conn, org, campaign_id)
        replied = await db.has_replied(conn, org, campaign_id, contact_id)
        stages = await db.lead_stages(conn, org, contact_id)
        keys = await variants_db.step_keys(conn, campaign_id)
        arms = {s["id"]: step_arms(s) for s in steps if s["variants"]}
        contents = await variants_db.template_contents(
            conn, org, sorted({a.template_id for group in arms.values() for a in group[1:]})
        )
        auto = {s["id"]: (keys[s["id"]], arms[s["id"]]) for s in steps if s["autoWinner"] and s["id"] in arms}
        won = await variants_db.winners(conn, campaign_id, auto)
        chosen = {
            step_id: won.get(step_id) or variants.assign(group, campaign_id, contact_id, keys[step_id])
            for step_id, group in arms.items()
        }
        return contact, steps, replied, stages, chosen, contents

    contact, steps, replied, stages, chosen, contents = await services().store.run(load, transaction=False)
    fields: dict[str, str | None] = {k: contact[k] for k in CONTACT_FIELDS}
    company = contact["company_name"]
    facts = Facts(contact={**fields, "company_name": company}, has_replied=replied, lead_stages=stages)
    ai_text: str | None = None
    out = []
    for index, step in enumerate(steps):  # already in sequence order (order_index, created_at, id)
        item: dict[str, Any] = {
            "stepId": step["id"],
            "index": index,
            "orderIndex": step["order_index"],
            "triggerType": step["trigger_type"],
            "delayHours": step["delay_hours"],
            "delayMinutes": step["delay_minutes"],
            "isHidden": step["is_hidden"],
            "templateId": step["template_id"],
            "variantId": None,
        }
        out.append(item)
        content = step["content"]
        arm = chosen.get(step["id"])
        if arm is not None and arm.variant_id is not None:
            item.update(variantId=arm.variant_id, templateId=arm.template_id)
            content = contents.get(arm.template_id)
        conditions = step["conditions"] or {}
        if step["is_hidden"]:
            item.update(status="skip", reason="hidden")
            continue
        if not evaluate(conditions, facts):
            item.update(status="skip", reason="conditions", detail=failed_condition(conditions, facts))
            continue
        if content is None:
            item.update(status="skip", reason="invalid_template", detail="template missing")
            continue
        try:
            template = parse(content)
        except TemplateError as exc:  # saved before templates were validated
            item.update(status="skip", reason="invalid_template", detail=str(exc))
            continue
        if template.uses_ai and ai_text is None:
            ai_text = await personaliser().personalize(
                contact=fields, company_name=company, campaign_id=campaign_id
            )
        ctx = RenderContext(contact=fields, company_name=company, ai_text=ai_text or "")
        result = render(template, ctx, step_rng(campaign_id, contact_id, step["id"]))
        if isinstance(result, Rendered):
            item.update(status="send", text=result.text)
        else:
            item.update(status="skip", reason=result.reason, detail=result.detail)
    return {"campaignId": campaign_id, "contactId": contact_id, "steps": out}


@endpoint(
    bp,
    "GET",
    "/<id>/preview",
    summary="Every step of the campaign as one contact would receive it",
    query=PreviewQuery,
    response=Preview,
    errors=(404,),
)
async def preview_campaign(id: uuid.UUID, query: PreviewQuery) -> dict[str, Any]:
    return await _preview(id, query.contactId)


@endpoint(
    bp,
    "POST",
    "/<id>/ai/generate-variant",
    summary="Rewrite a template as a variant (AI; a stub that returns the content for now)",
    body=VariantRequest,
    response=VariantOut,
    errors=(404,),
)
async def generate_variant(id: uuid.UUID, body: VariantRequest) -> dict[str, Any]:
    who = ident.current()
    if body.content is None and body.templateId is None:
        raise validation(
            "Validation failed", [{"path": "content", "message": "content or templateId is required"}]
        )

    async def load(conn: asyncpg.Connection) -> str | None:
        await campaign_or_404(conn, who.organization_id, id)
        if body.templateId is None:
            return None
        template = await templates_db.get(conn, who.organization_id, id, body.templateId)
        if template is None:
            raise validation(
                "Referenced records not found",
                [{"path": "templateId", "message": "template not found in this campaign"}],
            )
        return template["content"]

    stored = await services().store.run(load, transaction=False)
    content = body.content if body.content is not None else stored or ""
    variant = await variant_generator().generate_variant(
        content=content,
        instructions=body.instructions or None,
        organization_id=who.organization_id,
        campaign_id=id,
    )
    return {"content": variant.content, "provider": variant.provider, "message": variant.message}
