"""The pre-launch checks (domain/preflight.py): each one fires on what it is about and passes otherwise;
rendering judged per group of contacts agrees with rendering each contact."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from campaignsvc.domain import conditions
from campaignsvc.domain import preflight as pf
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.campaign import CampaignPlan
from campaignsvc.domain.pacing import AccountPolicy
from campaignsvc.domain.templates import RenderContext, Rendered, parse, render

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
ORG = uuid.UUID(int=1)
BERLIN = ZoneInfo("Europe/Berlin")


def make_plan(
    *steps: dict[str, Any], audience: dict[str, Any] | None = None, schedule: Any = None
) -> CampaignPlan:
    rows = []
    for i, given_step in enumerate(steps):
        row = {
            "id": uuid.uuid4(),
            "order_index": i,
            "created_at": NOW,
            "trigger_type": "delay",
            "delay_hours": 0,
            "delay_minutes": 0,
            "is_hidden": False,
            "template_id": uuid.uuid4(),
            "conditions": {},
            "step_key": i,
            "content": "Hello",
        }
        row.update(given_step)
        rows.append(row)
    campaign = {"id": uuid.uuid4(), "organization_id": ORG, "target_audience": audience, "schedule": schedule}
    return CampaignPlan.from_rows(campaign, rows, reply_wait_hours=168)


def by_code(checks: list[pf.Check]) -> dict[pf.PreflightCode, pf.Check]:
    return {c.code: c for c in checks}


def passing(code: pf.PreflightCode) -> pf.Check:
    return pf.Check(code, 0, "fine")


# --- the report ------------------------------------------------------------------------------------------


def test_report__every_code_once_in_order__ok_unless_an_error_fails():
    everything = [passing(code) for code in reversed(pf.PreflightCode)]
    report = pf.Report.of(everything)
    assert [c.code for c in report.checks] == list(pf.PreflightCode)
    assert report.ok
    warned = pf.Report.of([*everything, pf.Check(pf.PreflightCode.MISSING_DATA, 3, "warn")])
    assert warned.ok and warned.checks[list(pf.PreflightCode).index(pf.PreflightCode.MISSING_DATA)].count == 3
    failed = pf.Report.of([*everything, pf.Check(pf.PreflightCode.NO_ACCOUNTS, 1, "none")])
    assert not failed.ok
    with pytest.raises(ValueError, match="long_campaign"):
        pf.Report.of([c for c in everything if c.code != pf.PreflightCode.LONG_CAMPAIGN])


def test_severities__errors_are_what_makes_the_start_fail_or_send_nothing():
    errors = {code for code in pf.PreflightCode if pf.SEVERITY[code] is pf.Severity.ERROR}
    assert errors == {
        pf.PreflightCode.NO_STEPS,
        pf.PreflightCode.FIRST_STEP_WAITS,
        pf.PreflightCode.INVALID_TEMPLATE,
        pf.PreflightCode.NO_ACCOUNTS,
        pf.PreflightCode.WINDOW_NEVER_OPEN,
        pf.PreflightCode.NO_AUDIENCE,
    }


# --- steps -----------------------------------------------------------------------------------------------


def test_no_steps__fires_with_only_hidden_steps():
    assert by_code(pf.step_checks(make_plan({"is_hidden": True}), NOW))[pf.PreflightCode.NO_STEPS].count == 1
    assert by_code(pf.step_checks(make_plan(), NOW))[pf.PreflightCode.NO_STEPS].count == 1
    checks = by_code(pf.step_checks(make_plan({"is_hidden": True}, {}), NOW))
    assert checks[pf.PreflightCode.NO_STEPS].count == 0
    assert checks[pf.PreflightCode.NO_STEPS].message == "1 visible step"


def test_first_step_waits__fires_when_the_first_visible_step_waits_for_a_reply():
    plan = make_plan({"is_hidden": True}, {"trigger_type": "after_reply"}, {})
    check = by_code(pf.step_checks(plan, NOW))[pf.PreflightCode.FIRST_STEP_WAITS]
    assert (check.count, check.sample) == (1, (plan.steps[1].id,))
    plan = make_plan({}, {"trigger_type": "after_reply"})
    assert by_code(pf.step_checks(plan, NOW))[pf.PreflightCode.FIRST_STEP_WAITS].count == 0


def test_invalid_template__names_each_broken_visible_step():
    plan = make_plan({"content": "{x"}, {"content": "ok"}, {"content": "{{contact.age}}"})
    check = by_code(pf.step_checks(plan, NOW))[pf.PreflightCode.INVALID_TEMPLATE]
    assert check.count == 2
    assert check.sample == (plan.steps[0].id, plan.steps[2].id)
    assert "step 1: unclosed spintax" in check.message and "step 3: unknown placeholder" in check.message
    hidden = make_plan({"content": "{x", "is_hidden": True}, {})
    assert by_code(pf.step_checks(hidden, NOW))[pf.PreflightCode.INVALID_TEMPLATE].count == 0


# --- accounts --------------------------------------------------------------------------------------------


def account(name: str = "Anna", *, found: bool = True, sent: int = 0, **rules: Any) -> pf.Account:
    return pf.Account(uuid.uuid4(), name, found, AccountPolicy(**rules), sent)


def test_no_accounts__none_found_or_active():
    plan = make_plan({})
    for accounts, named in (([], False), ([account(found=False), account(active=False)], True)):
        check = by_code(pf.account_checks(plan, accounts, named=named, now=NOW))[pf.PreflightCode.NO_ACCOUNTS]
        assert check.count == 1, accounts
    assert (
        "no active one"
        in by_code(pf.account_checks(plan, [], named=False, now=NOW))[pf.PreflightCode.NO_ACCOUNTS].message
    )
    ok = by_code(pf.account_checks(plan, [account(), account(active=False)], named=True, now=NOW))
    assert ok[pf.PreflightCode.NO_ACCOUNTS].count == 0


def test_account_inactive__samples_the_accounts_that_do_not_send():
    plan = make_plan({})
    gone, off, on = account("Gone", found=False), account("Off", active=False), account("On")
    check = by_code(pf.account_checks(plan, [gone, on, off], named=True, now=NOW))[
        pf.PreflightCode.ACCOUNT_INACTIVE
    ]
    assert (check.count, check.sample) == (2, (gone.id, off.id))
    assert "Gone; Off" in check.message
    assert (
        by_code(pf.account_checks(plan, [on], named=True, now=NOW))[pf.PreflightCode.ACCOUNT_INACTIVE].count
        == 0
    )


def test_account_blocked__restricted_or_flood_blocked_now_says_until_when():
    plan = make_plan({})
    until = NOW + dt.timedelta(hours=3)
    restricted = account("Spammy", restricted=True)
    flooded = account("Floody", blocked_until=until, block_reason="flood_wait")
    expired = account("Was", blocked_until=NOW - dt.timedelta(seconds=1))
    check = by_code(pf.account_checks(plan, [restricted, flooded, expired], named=True, now=NOW))[
        pf.PreflightCode.ACCOUNT_BLOCKED
    ]
    assert (check.count, check.sample) == (2, (restricted.id, flooded.id))
    assert "Spammy is spam-restricted" in check.message
    assert "Floody is flood-blocked (flood_wait) until 2026-12-03 13:00 UTC" in check.message
    assert (
        by_code(pf.account_checks(plan, [expired], named=True, now=NOW))[
            pf.PreflightCode.ACCOUNT_BLOCKED
        ].count
        == 0
    )


def test_account_at_cap__todays_sends_at_the_cap_in_the_accounts_zone():
    plan = make_plan({})
    full = account("Full", sent=20, daily_cap=20, timezone=BERLIN)
    left = account("Left", sent=19, daily_cap=20)
    uncapped = account("Free", sent=500, daily_cap=0)
    check = by_code(pf.account_checks(plan, [full, left, uncapped], named=True, now=NOW))[
        pf.PreflightCode.ACCOUNT_AT_CAP
    ]
    assert (check.count, check.sample) == (1, (full.id,))
    assert "Full: 20/20 sends today, next after 2026-12-04 00:00 Europe/Berlin" in check.message
    # The campaign's daily target lowers the cap it may use.
    targeted = make_plan({}, audience={"dailySendTarget": 10})
    check = by_code(pf.account_checks(targeted, [account(sent=10, daily_cap=20)], named=True, now=NOW))
    assert check[pf.PreflightCode.ACCOUNT_AT_CAP].count == 1


def test_window_never_open__an_account_whose_window_the_schedule_functions_never_open(monkeypatch):
    hours = sched.Schedule(ZoneInfo("UTC"), 9 * 60, 17 * 60, frozenset({1, 2, 3, 4, 5}))
    plan = make_plan({})
    with_hours, anytime = account("Hours", schedule=hours), account("Anytime")
    assert pf.opening(hours, NOW) == NOW  # a Thursday 10:00
    assert pf.opening(hours, NOW.replace(hour=18)) == dt.datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    check = by_code(pf.account_checks(plan, [with_hours, anytime], named=True, now=NOW))
    assert check[pf.PreflightCode.WINDOW_NEVER_OPEN].count == 0
    # No window within the search: what a schedule whose every window DST erased comes to.
    monkeypatch.setattr(sched, "_SEARCH_DAYS", 0)
    assert pf.opening(hours, NOW) is None
    check = by_code(pf.account_checks(plan, [with_hours, anytime], named=True, now=NOW))[
        pf.PreflightCode.WINDOW_NEVER_OPEN
    ]
    assert (check.count, check.sample) == (1, (with_hours.id,))
    assert check.message == "The working hours never open for: Hours"
    campaign_window = make_plan({}, schedule=hours.to_json())
    check = by_code(pf.account_checks(campaign_window, [anytime], named=True, now=NOW))[
        pf.PreflightCode.WINDOW_NEVER_OPEN
    ]
    assert check.count == 1 and check.message.startswith("The campaign's schedule never open")


def test_gap_below_floor__the_floor_is_used_instead():
    assert pf.gap_check(make_plan(audience={"sendDelaySeconds": 600}), 360).count == 0
    assert pf.gap_check(make_plan(audience={"sendDelaySeconds": 360}), 360).count == 0
    below = pf.gap_check(make_plan(audience={"sendDelaySeconds": 60}), 360)
    assert below.count == 1 and "every gap will be 360 s" in below.message
    part = pf.gap_check(make_plan(audience={"sendDelayMinSeconds": 60, "sendDelayMaxSeconds": 600}), 360)
    assert part.count == 1 and "60–600 s" in part.message and "drawn below it will be 360 s" in part.message


def test_long_campaign__beyond_thirty_days_or_never():
    def check(**kw: Any) -> pf.Check:
        return pf.long_campaign_check(now=NOW, **{"reason": None, **kw})

    assert check(remaining_sends=100, finishes_at=NOW + dt.timedelta(days=30)).count == 0
    late = check(remaining_sends=1000, finishes_at=NOW + dt.timedelta(days=31))
    assert late.count == 1 and "in 31.0 days (more than 30)" in late.message
    never = check(remaining_sends=5, finishes_at=None, reason="every account is inactive")
    assert never.count == 1 and never.message.endswith(": every account is inactive")
    assert check(remaining_sends=0, finishes_at=None).count == 0


# --- the audience ----------------------------------------------------------------------------------------


def contact(**fields: Any) -> dict[str, Any]:
    return {"first_name": "Ann", "last_name": "Lee", "telegram_id": "1", **fields}


def test_audience_checks__no_audience_no_channel_already_in_campaign():
    plan = make_plan({})
    empty = pf.Tally(plan, drafted=True)
    empty.add({}, [(i, uuid.UUID(int=i)) for i in range(7, 0, -1)], count=7, reachable=False)
    checks = by_code(pf.audience_checks(empty))
    assert checks[pf.PreflightCode.NO_AUDIENCE].count == 1
    assert "the start would fail" in checks[pf.PreflightCode.NO_AUDIENCE].message
    assert checks[pf.PreflightCode.NO_CHANNEL].count == 7
    assert checks[pf.PreflightCode.NO_CHANNEL].sample == tuple(uuid.UUID(int=i) for i in range(1, 6))

    tally = pf.Tally(plan, drafted=False)
    ids = [uuid.uuid4() for _ in range(4)]
    tally.add(contact(), [(0, ids[0])])
    tally.add({}, [(1, ids[1])], reachable=False)
    tally.add(contact(), [(3, ids[3]), (2, ids[2])], count=2, elsewhere=True)
    checks = by_code(pf.audience_checks(tally, other_campaigns=["Spring", "Autumn"]))
    assert checks[pf.PreflightCode.NO_AUDIENCE].count == 0
    assert checks[pf.PreflightCode.NO_AUDIENCE].message == "3 open participants to send to"
    assert (checks[pf.PreflightCode.NO_CHANNEL].count, checks[pf.PreflightCode.NO_CHANNEL].sample) == (
        1,
        (ids[1],),
    )
    elsewhere = checks[pf.PreflightCode.ALREADY_IN_CAMPAIGN]
    assert (elsewhere.count, elsewhere.sample) == (2, (ids[2], ids[3]))
    assert "(Spring, Autumn)" in elsewhere.message
    alone = pf.Tally(plan, drafted=True)
    alone.add(contact(), [(0, ids[0])])
    checks = by_code(pf.audience_checks(alone))
    assert checks[pf.PreflightCode.NO_AUDIENCE].message == "1 contact of the audience to send to"
    codes = (pf.PreflightCode.NO_AUDIENCE, pf.PreflightCode.NO_CHANNEL, pf.PreflightCode.ALREADY_IN_CAMPAIGN)
    assert [checks[c].count for c in codes] == [0, 0, 0]


def tally_of(plan: CampaignPlan, contacts: list[dict[str, Any]]) -> tuple[pf.Tally, list[uuid.UUID]]:
    """One group per contact, in order."""
    tally = pf.Tally(plan, drafted=True)
    ids = []
    for i, one in enumerate(contacts):
        fields = dict(one)
        extra = {k: fields.pop(k) for k in ("from_step", "has_replied") if k in fields}
        ids.append(uuid.uuid4())
        tally.add(fields, [(i, ids[-1])], **extra)
    return tally, ids


def test_missing_data__counts_the_contacts_that_cannot_fill_a_placeholder_without_fallback():
    plan = make_plan(
        {"content": "Hi {{contact.first_name}}"}, {"content": "Bye {{contact.last_name|friend}}"}
    )
    tally, ids = tally_of(
        plan,
        [contact(), contact(first_name=" "), contact(first_name=None, last_name=None)]
        + [contact(first_name="")] * 5,
    )
    check = by_code(pf.render_checks(tally, ai_text=""))[pf.PreflightCode.MISSING_DATA]
    assert check.count == 7
    assert check.sample == tuple(ids[1:6])
    assert check.message == (
        "7 contacts would skip a step for missing data: {{contact.first_name}} in step 1 has no fallback and "
        "7 contacts no value for it"
    )
    everyone, _ = tally_of(plan, [contact(), contact(last_name="")])
    assert by_code(pf.render_checks(everyone, ai_text=""))[pf.PreflightCode.MISSING_DATA].count == 0


def test_missing_data__every_placeholder_a_contact_lacks_in_any_spintax_option():
    plan = make_plan(
        {"content": "{Hi {{contact.last_name}}|Hello} from {{company.name}}, @{{contact.username}}"},
        {"content": "x", "is_hidden": True},
        {"content": "{{contact.display_name}}"},
    )
    tally, ids = tally_of(
        plan,
        [
            contact(last_name="", company_name="Acme", username="@"),  # username "@" is empty
            contact(company_name="Acme", username="ann"),
            contact(first_name="", last_name="", display_name=" ", company_name="Acme", username="ann"),
        ],
    )
    check = by_code(pf.render_checks(tally, ai_text=""))[pf.PreflightCode.MISSING_DATA]
    assert (check.count, set(check.sample)) == (2, {ids[0], ids[2]})
    assert "{{contact.last_name}} in step 1 has no fallback and 2 contacts" in check.message
    assert "{{contact.username}} in step 1 has no fallback and 1 contact no value" in check.message
    assert "{{contact.display_name}} in step 3 has no fallback and 1 contact no value" in check.message
    assert "company.name" not in check.message


def test_missing_data__only_steps_left_and_let_through_by_their_conditions():
    plan = make_plan(
        {"content": "Hi {{contact.first_name}}"},
        {
            "content": "Re {{contact.last_name}}",
            "conditions": {"contact": [{"field": "last_name", "op": "not_empty"}]},
        },
        {"content": "Still there, {{contact.last_name}}?", "conditions": {"stopIfReplied": True}},
    )
    tally, ids = tally_of(
        plan,
        [
            contact(first_name="", from_step=1),  # past step 1
            contact(last_name="", has_replied=True),  # step 2 ruled out by its condition, step 3 by the reply
            contact(last_name="", from_step=1),  # step 3 applies
        ],
    )
    check = by_code(pf.render_checks(tally, ai_text=""))[pf.PreflightCode.MISSING_DATA]
    assert (check.count, check.sample) == (1, (ids[2],))
    assert "{{contact.last_name}} in step 3" in check.message


def test_empty_render__a_step_that_can_come_out_empty():
    plan = make_plan({"content": "{{contact.first_name|}}"}, {"content": "{|Hi} {{ai.personalize}}"})
    tally, ids = tally_of(plan, [contact(), contact(first_name="")])
    checks = by_code(pf.render_checks(tally, ai_text=""))
    empty = checks[pf.PreflightCode.EMPTY_RENDER]
    assert (empty.count, empty.sample) == (2, tuple(ids))
    assert empty.message == (
        "A step can come out as an empty message (skipped): step 1 for 1 contact; step 2 for 2 contacts"
    )
    assert checks[pf.PreflightCode.MISSING_DATA].count == 0
    with_ai = by_code(pf.render_checks(tally, ai_text="Loved your talk"))[pf.PreflightCode.EMPTY_RENDER]
    assert (with_ai.count, with_ai.sample) == (1, (ids[1],))
    named, _ = tally_of(make_plan({"content": "{{contact.first_name|}}"}), [contact()])
    assert by_code(pf.render_checks(named, ai_text=""))[pf.PreflightCode.EMPTY_RENDER].count == 0


def test_groups__contacts_that_fare_alike_share_one_group():
    plan = make_plan({"content": "Hi {{contact.first_name}}"})
    tally, _ = tally_of(
        plan,
        [contact(first_name=f"N{i}", email=f"{i}@x") for i in range(1000)] + [contact(first_name="")] * 1000,
    )
    assert len(tally.groups) == 2
    assert by_code(pf.render_checks(tally, ai_text=""))[pf.PreflightCode.MISSING_DATA].count == 1000


def test_renders__every_spintax_combination_then_random_picks():
    texts = {
        r.text
        for r in pf.renders(parse("{a|b} {c|{d|e}|f}"), RenderContext({}, None))
        if isinstance(r, Rendered)
    }
    assert texts == {"a c", "a d", "a e", "a f", "b c", "b d", "b e", "b f"}
    huge = parse("{a|b}" * 9)  # 512 combinations
    first = pf.renders(huge, RenderContext({}, None))
    assert len(first) == 2 * pf.MAX_PATHS
    assert [r.text for r in first[:3] if isinstance(r, Rendered)] == ["aaaaaaaaa", "aaaaaaaab", "aaaaaaaba"]
    assert first == pf.renders(huge, RenderContext({}, None))


FIELD_VALUES = hst.sampled_from([None, "", " ", "@", " @ ", "@@", "x", " Ann ", "@ann"])
TEMPLATES = [
    "Hi {{contact.first_name}}",
    "{{contact.display_name}}",
    "{Hey|Hi {{contact.last_name|}}} @{{contact.username}}",
    "{{contact.username|}}{|{{company.name}}}",
    "{ {{contact.first_name|}}|{{contact.last_name|}} } {{ai.personalize}}",
]


@settings(max_examples=300, deadline=None)
@given(
    fields=hst.fixed_dictionaries({f: FIELD_VALUES for f in pf.RENDER_FIELDS}),
    content=hst.sampled_from(TEMPLATES),
    ai_text=hst.sampled_from(["", "AI"]),
)
def test_a_group_renders_as_each_of_its_contacts(fields, content, ai_text):
    """Rendering a group's stand-in values gives, combination by combination, the outcome rendering the
    contact itself gives: the grouping is exact."""
    template = parse(content)
    tokens = tuple(pf._token(fields[f]) for f in pf.RENDER_FIELDS)
    contact_fields = {f: v for f, v in fields.items() if f != "company_name"}

    def kinds(ctx: RenderContext) -> list[str]:
        return ["sent" if isinstance(r, Rendered) else r.detail for r in pf.renders(template, ctx)]

    real = kinds(RenderContext(contact_fields, fields["company_name"], ai_text))
    stand_in = {f: pf._SEEN[t] for f, t in zip(pf.RENDER_FIELDS, tokens, strict=True)}
    company = stand_in.pop("company_name")
    assert kinds(RenderContext(stand_in, company, ai_text)) == real
    found = pf.outcome(template, tokens, ai_text)
    first_missing = {k for k in real if k.startswith(("contact.", "company."))}
    assert first_missing <= found.missing
    assert found.empty == ("empty message" in real)
    # A placeholder is found missing only if the contact's own field for it renders empty.
    for name in found.missing:
        alone = parse("{{" + name + "}}")
        ctx = RenderContext(contact_fields, fields["company_name"], ai_text)
        assert not isinstance(render(alone, ctx, random.Random(0)), Rendered)


def test_key_fields__exact_only_where_a_visible_steps_rule_compares_the_value():
    plan = make_plan(
        {
            "conditions": {
                "contact": [
                    {"field": "email", "op": "not_empty"},
                    {"field": "first_name", "op": "equals", "value": "ann"},
                    {"field": "bio", "op": "equals", "value": "x"},
                ]
            }
        },
        {"is_hidden": True, "conditions": {"contact": [{"field": "phone", "op": "contains", "value": "1"}]}},
    )
    assert pf.key_fields(plan) == {
        "first_name": True,
        "last_name": False,
        "display_name": False,
        "username": False,
        "company_name": False,
        "email": False,
    }


def stand_in(value: str | None) -> str:
    """What storage/preflight.py sends for a field compared only for emptiness: "x" for a value with a
    letter or a digit, else the value ('' for none)."""
    if value is None:
        return ""
    return "x" if any(ch.isalnum() for ch in value) else value


TEXTS = hst.one_of(hst.none(), hst.text(alphabet=" \t\n\u00a0\u2003\u3000@._-ßAnn7", max_size=6))


@settings(max_examples=400, deadline=None)
@given(value=TEXTS, op=hst.sampled_from(["empty", "not_empty"]), content=hst.sampled_from(TEMPLATES))
def test_a_stand_in_renders_and_meets_the_emptiness_rules_as_its_value(value, op, content):
    def holds(v: str | None) -> bool:
        rule = {"contact": [{"field": "email", "op": op}]}
        return conditions.evaluate(rule, conditions.Facts(contact={"email": v}, has_replied=False))

    assert holds(value) == holds(stand_in(value))
    assert pf._token(value) == pf._token(stand_in(value))
    template = parse(content)
    for field in pf.RENDER_FIELDS:
        real = {f: "Ann" for f in pf.RENDER_FIELDS} | {field: value}
        kept = real | {field: stand_in(value)}
        kinds = [
            ["sent" if isinstance(r, Rendered) else r.detail for r in pf.renders(template, ctx)]
            for ctx in (
                RenderContext({k: v for k, v in f.items() if k != "company_name"}, f["company_name"])
                for f in (real, kept)
            )
        ]
        assert kinds[0] == kinds[1]


def test_groups__the_first_contacts_by_position_across_additions():
    group = pf.Group()
    ids = [uuid.UUID(int=i) for i in range(10)]
    group.add(3, [(7, ids[7]), (8, ids[8]), (9, ids[9])])
    group.add(4, [(1, ids[1]), (2, ids[2]), (5, ids[5]), (6, ids[6])])
    group.add(1, [(0, ids[0])])
    assert group.count == 8
    assert pf.merged([group, pf.Group(1, [(3, ids[3])])]) == (9, (ids[0], ids[1], ids[2], ids[3], ids[5]))
