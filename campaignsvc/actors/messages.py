"""Messages to and between actors: frozen attrs classes named as commands or facts.

Control messages reach the supervisor's inbox after the state change they announce is committed; the
database stays the truth, a message only says "look again now".
"""

from __future__ import annotations

import uuid

import attrs


@attrs.frozen
class CampaignActivated:
    """A campaign became active (started or resumed): run its actor."""

    campaign_id: uuid.UUID


@attrs.frozen
class CampaignDeactivated:
    """A campaign left the active state (paused, stopped, completed, deleted): stop its actor and drop its
    queued sends; a send already handed to Messaging finishes and is recorded."""

    campaign_id: uuid.UUID


@attrs.frozen
class ParticipantsChanged:
    """Participants of an active campaign were added, released by a reply or rescheduled: re-read due times."""

    campaign_id: uuid.UUID


@attrs.frozen
class AccountChanged:
    """A BD account's block, pause or settings changed: its limiter re-reads its state."""

    bd_account_id: uuid.UUID


@attrs.frozen
class LeadsOwed:
    """Participants were marked as owed a pipeline lead (first send, reply): the lead creator looks now."""


# Everything the control bus carries.
ControlMessage = CampaignActivated | CampaignDeactivated | ParticipantsChanged | AccountChanged | LeadsOwed
