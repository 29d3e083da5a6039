"""Enrolment's account assignment (actors/enrolment._assign): round-robin by load, an account a member
already has is kept, ties go to the earlier account — the same choices as taking the minimum over every
account for each member, which is what it replaced (O(members × accounts)). And the split of a large
audience's rows into those due first and the rest (``_due_first``)."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.actors.enrolment import Pending, _assign, _due_first, _Member, channel_of


def by_minimum(
    members: list[_Member], accounts: list[uuid.UUID], loads: dict[uuid.UUID, int]
) -> tuple[dict[uuid.UUID, list[tuple[uuid.UUID, str]]], list[uuid.UUID]]:
    count = {a: loads.get(a, 0) for a in accounts}
    order = {a: i for i, a in enumerate(accounts)}
    assigned: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {a: [] for a in accounts}
    unreachable = []
    for m in members:
        channel = channel_of(m.telegram_id, m.username)
        if channel is None or m.deleted:
            unreachable.append(m.key)
            continue
        account = (
            m.account
            if m.account is not None and m.account in count
            else min(accounts, key=lambda a: (count[a], order[a]))
        )
        count[account] += 1
        assigned[account].append((m.key, channel))
    return assigned, unreachable


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[_Member], list[uuid.UUID], dict[uuid.UUID, int]]:
    accounts = [uuid.UUID(int=i + 1) for i in range(draw(st.integers(1, 6)))]
    elsewhere = uuid.UUID(int=999)  # an account the member has that the campaign no longer uses
    loads = {a: draw(st.integers(0, 4)) for a in accounts if draw(st.booleans())}
    members = []
    for i in range(draw(st.integers(0, 40))):
        members.append(
            _Member(
                uuid.UUID(int=10_000 + i),
                draw(st.one_of(st.none(), st.sampled_from([*accounts, elsewhere]))),
                draw(st.sampled_from([None, "", " 42 ", "7"])),
                draw(st.sampled_from([None, "", "@name"])),
                deleted=draw(st.booleans()) and draw(st.booleans()),
            )
        )
    return members, accounts, loads


@settings(max_examples=300)
@given(cases())
def test_assign__the_least_loaded_account_like_the_minimum_over_all(case) -> None:
    members, accounts, loads = case
    assert _assign(members, accounts, loads) == by_minimum(members, accounts, loads)


def test_assign__a_large_audience_is_balanced_in_account_order() -> None:
    accounts = [uuid.UUID(int=i + 1) for i in range(100)]
    members = [_Member(uuid.UUID(int=10_000 + i), None, str(7_000_000 + i), None) for i in range(100_000)]
    assigned, unreachable = _assign(members, accounts, {accounts[0]: 3})
    assert unreachable == []
    # 100,003 participants in all: every account ends with 1,000 or 1,001, the first counting its three.
    loads = {a: len(rows) + (3 if a == accounts[0] else 0) for a, rows in assigned.items()}
    assert [loads[a] for a in accounts[:4]] == [1001, 1001, 1001, 1000]
    assert set(loads.values()) == {1000, 1001}
    # The first account sits out the first three rounds: member 4 is the fifth account's first.
    assert assigned[accounts[5]][0] == (uuid.UUID(int=10_000 + 4), "7000004")


def test_due_first__the_earliest_rows_across_accounts_then_the_rest_as_they_were() -> None:
    t0 = dt.datetime(2026, 12, 3, 9, tzinfo=dt.UTC)
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    # Account a: slots at 0, 60, 120 s; account b: 0, 30, 60 s (positions say who came first in the audience).
    accounts = [a, a, a, b, b, b]
    offsets = [0, 60, 120, 0, 30, 60]
    positions = [0, 2, 4, 1, 3, 5]
    rows = Pending(
        uuid.UUID(int=9),
        [uuid.UUID(int=100 + i) for i in range(6)],
        positions,
        accounts,
        [str(i) for i in range(6)],
        [t0 + dt.timedelta(seconds=s) for s in offsets],
        0,
    )
    first, rest = _due_first(rows, 4)
    assert first.positions == [0, 1, 3, 2]  # 0 s (a, then b), 30 s (b), 60 s (a before b: position 2 < 5)
    assert rest.positions == [4, 5] and rest.accounts == [a, b]
    assert len(first) + len(rest) == len(rows) and first.step == rest.step == 0
