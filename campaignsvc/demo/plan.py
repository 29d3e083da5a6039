"""The demo's scenario in real-world units, and the time scale that makes it fit in about a minute.

Everything here is stated as a sales team would plan it ("a 6-minute gap", "follow up a day later") and
divided by the speed factor when the demo builds its campaigns. The dispatcher runs on the wall clock, so
the scale is applied to the numbers the campaigns and settings are made of, not to a clock:

======================  ==================  =============================================
real plan               demo at ×1440       where it goes
======================  ==================  =============================================
4 min account floor     0.17 s              ``CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT``
12–16 min gap           0.5–0.67 s          ``targetAudience.sendDelaySeconds``
follow-up after 1 day   1 min               step ``delayHours``/``delayMinutes``
reply wait 2 h          5 s                 ``targetAudience.replyWaitHours``
Telegram's limit 8 min  0.33 s              sandbox ``account_min_gap_s``
FLOOD_WAIT 2 h          5 s                 sandbox ``flood_wait_s``
replies after 30 min–   1.25–75 s           sandbox ``reply_delay_s``
30 h
======================  ==================  =============================================

Step delays are whole minutes in the API, so a scaled delay is rounded to the nearest minute (at
speeds above ×2880 a one-day follow-up becomes immediate). Daily caps are not scaled: they count real
calendar days: an account that reaches its cap is done for the day, and the demo counts a campaign whose
accounts are all capped as finished for today (it stops such campaigns when it exits).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0

DEFAULT_SPEED = 1440.0  # one real day per demo minute
QUICK_SPEED = 3_600.0  # one real day per 24 demo seconds: follow-ups become immediate

# What the sandbox's "Telegram" tolerates, and what it does to an account that sends faster.
TELEGRAM_MIN_GAP_S = 8 * MINUTE
FLOOD_WAIT_S = 2 * HOUR
REPLY_RATE = 0.35
REPLY_DELAY_S = (30 * MINUTE, 30 * HOUR)
# The service's floor between two sends of one account (CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT).
ACCOUNT_FLOOR_S = 4 * MINUTE
IN_DOUBT_RETRY_S = 15 * MINUTE
LATENCY_MS = (20.0, 10.0)  # per send, ± jitter: real time, not scaled (it is the network)


@attrs.frozen
class Speed:
    """How many real seconds one demo second stands for."""

    factor: float

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.factor <= 1_000_000:
            raise ValueError(f"speed must be between 1 and 1000000, got {self.factor}")

    def seconds(self, real_s: float) -> float:
        return real_s / self.factor

    def step_delay(self, real_s: float) -> tuple[int, int]:
        """(delayHours, delayMinutes) of a step that waits ``real_s``: whole minutes, rounded."""
        minutes = round(real_s / self.factor / 60)
        return divmod(minutes, 60)

    def hours(self, real_s: float) -> float:
        return real_s / self.factor / HOUR

    def describe(self) -> str:
        per_minute = self.factor * 60
        if per_minute % DAY == 0:
            unit = f"{per_minute / DAY:g} real day(s)"
        elif per_minute % HOUR == 0:
            unit = f"{per_minute / HOUR:g} real hour(s)"
        else:
            unit = f"{per_minute / MINUTE:g} real minute(s)"
        return f"×{self.factor:g}: one demo minute is {unit}"


@attrs.frozen
class AccountSpec:
    key: str
    first_name: str
    last_name: str
    username: str
    daily_cap: int
    role: str  # what the account is for in the story


ACCOUNTS = (
    AccountSpec("anna", "Anna", "Berg", "anna_sales", 300, "steady, 12–16 min gaps"),
    AccountSpec("boris", "Boris", "Chen", "boris_bd", 200, "steady, shares a campaign with Anna"),
    AccountSpec("clara", "Clara", "Diaz", "clara_events", 30, "small daily cap: reaches it, the rest waits"),
    AccountSpec("dmitri", "Dmitri", "Egorov", "dmitri_growth", 150, "sends too fast: FLOOD_WAIT"),
)

CONTACTS = 300
COMPANIES = 30
PIPELINE = ("Lead", "Qualified", "Won")
# Contacts whose lead already sits in a late stage: conditions skip them.
QUALIFIED_EVERY = 6
WON_EVERY = 10

_FIRST = [
    "Ivan",
    "Maria",
    "Lukas",
    "Sofia",
    "Omar",
    "Elena",
    "Noah",
    "Priya",
    "Mateo",
    "Aiko",
    "Jonas",
    "Lea",
    "Karim",
    "Nina",
    "Pavel",
    "Yara",
    "Felix",
    "Ines",
    "Tomas",
    "Hana",
    "Oskar",
    "Lina",
    "Ravi",
    "Mila",
    "Emil",
    "Zoe",
    "Arjun",
    "Eva",
    "Leon",
    "Ada",
]
_LAST = [
    "Petrov",
    "Novak",
    "Weber",
    "Rossi",
    "Haddad",
    "Silva",
    "Kim",
    "Jensen",
    "Moreau",
    "Sato",
    "Kowalski",
    "Garcia",
    "Ivanova",
    "Fischer",
    "Costa",
    "Nakamura",
    "Larsen",
    "Dubois",
    "Mehta",
    "Horvat",
]
_COMPANY_A = ["North", "Blue", "Swift", "Bright", "Iron", "Silver", "Green", "Quiet", "Bold", "Clear"]
_COMPANY_B = ["Labs", "Works", "Systems", "Cloud", "Metrics"]


def company_names() -> list[str]:
    return [f"{_COMPANY_A[i % 10]} {_COMPANY_B[(i // 10 + i) % 5]}" for i in range(COMPANIES)]


def contact_rows() -> list[dict[str, Any]]:
    """The demo's contacts, deterministic: names, a Telegram id each (two have none), a company index."""
    rows = []
    for i in range(CONTACTS):
        first = _FIRST[i % len(_FIRST)]
        last = _LAST[(i * 7 + i // len(_FIRST)) % len(_LAST)]
        row: dict[str, Any] = {
            "first_name": first,
            "last_name": last,
            "display_name": f"{first} {last}",
            "username": f"{first.lower()}_{last.lower()}_{i}",
            "telegram_id": str(7_100_000_000 + i * 37),
            "company": None if i % 9 == 4 else i % COMPANIES,
        }
        rows.append(row)
    # Two contacts nobody can write to: no Telegram id, no username (the dispatcher fails them at once).
    for i in (5, 11):
        rows[i]["telegram_id"] = None
        rows[i]["username"] = None
    return rows


def lead_stage(index: int) -> str | None:
    """The pipeline stage of contact ``index``'s lead, if it has one."""
    if index % WON_EVERY == 3:
        return "Won"
    if index % QUALIFIED_EVERY == 2:
        return "Qualified"
    if index % 4 == 1:
        return "Lead"
    return None


@attrs.frozen
class StepSpec:
    content: str
    delay_s: float = 0.0
    trigger: str = "delay"
    conditions: dict[str, Any] | None = None


@attrs.frozen
class CampaignSpec:
    key: str
    name: str
    accounts: tuple[str, ...]
    contacts: range  # indexes into contact_rows()
    quick_contacts: range
    gap_s: tuple[float, float]
    steps: tuple[StepSpec, ...]
    reply_wait_s: float | None = None
    scheduled: bool = False
    failing: dict[int, str] = attrs.field(factory=dict)  # contact index → sandbox recipient error
    story: str = ""


SKIP_LATE_STAGES = "skip-late-stages"  # placeholder for the pipeline condition, filled in by build

CAMPAIGNS = (
    CampaignSpec(
        key="intro",
        name="Founders intro",
        accounts=("anna", "boris"),
        contacts=range(0, 40),
        quick_contacts=range(0, 16),
        gap_s=(12 * MINUTE, 16 * MINUTE),
        reply_wait_s=2 * HOUR,
        scheduled=True,
        failing={7: "privacy", 19: "deactivated", 26: "privacy", 33: "premium"},
        story="3 steps: intro; a bump a day later unless they replied or are already qualified; "
        "a calendar link once they answer",
        steps=(
            StepSpec(
                "{Hi|Hello} {{contact.first_name|there}}! I saw {{company.name|your team}} is growing its "
                "sales team. We help founders book demos over Telegram. Worth a quick chat?"
            ),
            StepSpec(
                "Just bumping this, {{contact.first_name|there}}: happy to send a 2-minute overview.",
                delay_s=DAY,
                conditions={"stopIfReplied": True, "notInPipelineStage": SKIP_LATE_STAGES},
            ),
            StepSpec(
                "Great to hear from you! Here is my calendar: https://cal.example.test/demo",
                delay_s=30 * MINUTE,
                trigger="after_reply",
            ),
        ),
    ),
    CampaignSpec(
        key="webinar",
        name="Webinar invite",
        accounts=("clara",),
        contacts=range(40, 76),
        quick_contacts=range(40, 76),
        gap_s=(12 * MINUTE, 12 * MINUTE),
        story="one step, 36 invitations for a daily cap of 30: the rest wait for tomorrow",
        steps=(
            StepSpec(
                "Hi {{contact.first_name|there}}, we run a 30-minute webinar on Telegram outreach on "
                "Thursday. Want an invite?"
            ),
        ),
    ),
    CampaignSpec(
        key="blitz",
        name="Blitz",
        accounts=("dmitri",),
        contacts=range(76, 90),
        quick_contacts=range(76, 84),
        gap_s=(0.0, 0.0),
        story="sends at the 4-minute floor, faster than Telegram tolerates: FLOOD_WAIT; "
        "skips contacts already qualified or won",
        steps=(
            StepSpec(
                "{{contact.first_name|Hey}}, 20% off our annual plan until Friday. Reply YES for details.",
                conditions={"notInPipelineStage": SKIP_LATE_STAGES},
            ),
        ),
    ),
)


def working_window(now: dt.datetime, zone: str = "Europe/Berlin") -> dict[str, Any]:
    """A schedule whose window opened two hours ago and closes in four, every day, in ``zone``."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(zone))
    start = (local.hour - 2) % 24
    end = (local.hour + 4) % 24
    return {
        "timezone": zone,
        "workingHours": {"start": f"{start:02d}:00", "end": f"{end:02d}:00"},
        "daysOfWeek": list(range(7)),
    }


def resolve_conditions(
    conditions: dict[str, Any] | None, late_stages: dict[str, Any]
) -> dict[str, Any] | None:
    if conditions is None:
        return None
    return {k: (late_stages if v == SKIP_LATE_STAGES else v) for k, v in conditions.items()}
