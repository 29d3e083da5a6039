"""AI message variants (SPEC R-API-3): the interface the HTTP layer calls, and the stub it uses until a
real AI client is connected.

A real implementation is any object with ``generate_variant``; install it with
``app.config["AI_VARIANT_GENERATOR"] = MyGenerator(...)`` (http/preview.py reads it, falling back to the
stub).
"""

from __future__ import annotations

import uuid
from typing import Protocol

import attrs

STUB_MESSAGE = "AI will be connected later"


@attrs.frozen
class Variant:
    content: str
    provider: str
    message: str | None = None


class VariantGenerator(Protocol):
    """Rewrites a message template into a variant with the same meaning and the same placeholders."""

    async def generate_variant(
        self,
        *,
        content: str,
        instructions: str | None,
        organization_id: uuid.UUID,
        campaign_id: uuid.UUID,
    ) -> Variant: ...


@attrs.frozen
class StubVariantGenerator:
    """Returns the content unchanged and says that AI is not connected yet."""

    async def generate_variant(
        self,
        *,
        content: str,
        instructions: str | None,
        organization_id: uuid.UUID,
        campaign_id: uuid.UUID,
    ) -> Variant:
        return Variant(content=content, provider="stub", message=STUB_MESSAGE)
