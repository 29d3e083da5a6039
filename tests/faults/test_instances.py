"""Several instances of ``campaignsvc serve`` on one database, each holding leases on a share of the BD
accounts (``campaign_account_leases``): together they send every message once and keep every account's
gap; the accounts of an instance that dies are taken over within the lease; an instance that is paused
(SIGSTOP) or cut off from PostgreSQL starts no Messaging call once its lease has run out.

The sandbox is the witness for what was delivered; ``campaign_sends.sent_by`` says which instance's claim
wrote each ledger row, and in the last scenario a relay in front of each instance's Messaging link
(``harness.MessagingWitness``) says which instance started each call, including calls that a fenced-off
instance could no longer record."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import random
import statistics
import time
import uuid
from typing import Any

import trio

from tests.factories import make_org
from tests.faults.harness import (
    MessagingWitness,
    Stand,
    check,
    database_relay,
    gap_violations,
    invariants,
    open_stand,
    through_relay,
)

LEASE_S = 2
GAP_S = 0.25
SANDBOX_ARGS = ("--latency-ms", "40", "--jitter-ms", "30")
# docs: an expired lease is taken over within LEASE_SECONDS + 1 s; the new owner then waits out the
# account's gap after the dead instance's last send.
TAKEOVER_BOUND_S = LEASE_S + 1 + GAP_S
# A request the killed or paused instance wrote just before the signal can still reach the sandbox just
# after it. A lease renewed at most LEASE/3 before the signal runs for at least 2/3 of a lease after it,
# so no rightful new owner's call arrives this early: earlier arrivals are not a takeover.
IN_FLIGHT_S = 0.2
# The relay stamps a call when the test process reads it: up to this much after the instance wrote it.
STAMP_SLACK_S = 0.1
TERMINAL = ("completed", "replied", "failed")


async def _open(tmp_path, store, database_url: str) -> Stand:
    org = await make_org(store)
    return await open_stand(
        tmp_path,
        store,
        org,
        {
            "DATABASE_URL": database_url,
            "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": str(int(GAP_S * 1000)),
            "LEASE_SECONDS": str(LEASE_S),
        },
    )


async def _campaign(stand: Stand, accounts: list[uuid.UUID], contacts: int) -> str:
    cid = await stand.env.campaign(
        accounts=accounts,
        contacts=await stand.org.contacts(contacts),
        steps=[{}, {}],
        audience={"sendDelaySeconds": GAP_S},
    )
    await stand.env.api("POST", f"/api/campaigns/{cid}/start")
    return cid


def _live(lease: dict[str, Any], now: dt.datetime) -> bool:
    """A lease still runs: it has an owner whose heartbeat is younger than a lease (leases live as long as
    their owner's heartbeat, storage/leases.py)."""
    if lease.get("owner") is None:
        return False
    beat = lease.get("heartbeat_at")
    return beat is not None and beat + dt.timedelta(seconds=LEASE_S) > now


async def _held(stand: Stand, instance_id: str, accounts: set[str]) -> set[str]:
    """The accounts whose running lease ``instance_id`` holds now."""
    now = dt.datetime.now(dt.UTC)
    return {
        acc
        for acc, lease in (await stand.leases()).items()
        if acc in accounts and lease["owner"] == instance_id and _live(lease, now)
    }


async def _wait_held(stand: Stand, instance_id: str, accounts: set[str], within: float) -> set[str]:
    """The accounts ``instance_id`` holds as soon as it holds one, or the empty set after ``within``."""
    with trio.move_on_after(within):
        while True:
            held = await _held(stand, instance_id, accounts)
            if held:
                return held
            await trio.sleep(0.1)
    return set()


async def _accounts_with_work(stand: Stand, cid: str) -> set[str]:
    rows = await stand.store.fetch(
        "SELECT DISTINCT bd_account_id::text AS account FROM campaign_participants"
        " WHERE campaign_id = $1 AND status <> ALL($2::text[]) AND bd_account_id IS NOT NULL",
        uuid.UUID(cid),
        list(TERMINAL),
    )
    return {r["account"] for r in rows}


def _takeovers(
    received: list[dict[str, Any]], accounts: set[str], signalled_mono: float
) -> dict[str, float | None]:
    """Per account: seconds from the signal to its first arrival at the sandbox after it (past the
    requests already in flight), or None when none arrived."""
    out: dict[str, float | None] = {a: None for a in accounts}
    for record in received:
        account = record.get("bdAccountId")
        delta = float(record["received_mono"]) - signalled_mono
        if account in out and delta > IN_FLIGHT_S and (out[account] is None or delta < out[account]):
            out[account] = delta
    return {a: None if d is None else round(d, 3) for a, d in out.items()}


def _summary(times: list[float]) -> dict[str, float | None]:
    return {
        "max_s": round(max(times), 3) if times else None,
        "median_s": round(statistics.median(times), 3) if times else None,
        "samples": len(times),
    }


async def _sent_by(stand: Stand, cid: str) -> dict[str, collections.Counter]:
    """Account → how many of its ledger rows each instance's claim last wrote (None: no sent_by)."""
    rows = await stand.store.fetch(
        "SELECT bd_account_id::text AS account, sent_by, count(*) AS n FROM campaign_sends"
        " WHERE campaign_id = $1 GROUP BY 1, 2",
        uuid.UUID(cid),
    )
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in rows:
        out[r["account"]][r["sent_by"]] += r["n"]
    return out


async def test_three_instances_on_one_database__share_the_accounts_and_send_every_message_once(
    store, database_url, tmp_path
):
    """Two instances start, the campaign starts, a third joins while they send (ten participants of two
    steps per account: about five seconds of sending): the accounts are shared out again (an account may
    move), and every invariant of one instance holds for the three."""
    stand = await _open(tmp_path, store, database_url)
    ids = ["inst-a", "inst-b", "inst-c"]
    try:
        await stand.start_sandbox(*SANDBOX_ARGS, "--seed", "11")
        await stand.start_instances(*ids[:2])
        accounts = [await stand.org.bd_account() for _ in range(21)]
        cid = await _campaign(stand, accounts, contacts=210)
        await stand.start_instance(ids[2])
        joined_at = dt.datetime.now(dt.UTC)
        completion_s = await stand.wait_completed([cid], within=60)
        leases = await stand.leases()
        figures, problems = await invariants(
            stand, [cid], gaps={str(a): GAP_S for a in accounts}, steps={cid: 2}
        )
        by_account = await _sent_by(stand, cid)
        per_instance = collections.Counter()
        for counts in by_account.values():
            per_instance.update(counts)
        senders = {s for s in per_instance if s is not None}
        owners = collections.Counter(
            lease["owner"] for lease in leases.values() if lease["owner"] is not None
        )
        after_join = await store.fetchval(
            "SELECT count(*) FROM campaign_sends WHERE campaign_id = $1 AND sent_by = $2 AND sent_at > $3",
            uuid.UUID(cid),
            ids[2],
            joined_at,
        )
        figures["rows_by_instance"] = {str(k): v for k, v in per_instance.items()}
        figures["rows_without_sent_by"] = per_instance.get(None, 0)
        figures["accounts_sent_by_more_than_one"] = sum(
            1 for c in by_account.values() if len([s for s in c if s is not None]) > 1
        )
        figures["rows_sent_by_joiner_after_join"] = after_join
        figures["lease_owners_at_end"] = dict(owners)
        figures["leases_free_at_end"] = sum(1 for lease in leases.values() if lease["owner"] is None)
        figures["completion_s"] = completion_s
        figures["instances_alive"] = [i.alive for i in stand.instances]
        if len(senders) < 2:
            problems.append(f"fewer than two instances sent: ledger rows by sent_by {dict(per_instance)}")
        if set(owners) - set(ids):
            problems.append(f"leases held by unknown owners: {set(owners) - set(ids)}")
        dead = [i.id for i in stand.instances if not i.alive]
        if dead:
            problems.append(
                f"instances exited: {dead}: {stand.instances[stand.instance_index(dead[0])].log_tail()}"
            )
        check("instances_three", figures, problems)
    finally:
        await stand.close()


async def test_sigkill_of_one_of_two_instances__its_accounts_are_taken_over_within_the_lease(
    store, database_url, tmp_path
):
    """Two instances send; one is SIGKILLed and left dead until every account it held has had an arrival
    from the other (or the bound has passed), then restarted under its own INSTANCE_ID; three times. The
    takeover time of an account is the kill → its next arrival at the sandbox."""
    stand = await _open(tmp_path, store, database_url)
    rng = random.Random(20261204)
    ids = ["kill-a", "kill-b"]
    try:
        await stand.start_sandbox(*SANDBOX_ARGS, "--seed", "12")
        await stand.start_instances(*ids)
        accounts = [await stand.org.bd_account() for _ in range(4)]
        names = {str(acc) for acc in accounts}
        cid = await _campaign(stand, accounts, contacts=140)
        cycles = []
        kill_monos: list[tuple[float, set[str]]] = []
        problems_seen: list[str] = []
        seq = 0
        for cycle in range(3):
            victim = stand.instance_index(ids[1])
            held = await _wait_held(stand, ids[1], names, within=2 * LEASE_S + 2)
            if not held:
                # The restarted instance got no share back: kill the one holding everything instead, so
                # the cycle still measures a takeover (and the missing share is reported).
                problems_seen.append(
                    f"cycle {cycle}: {ids[1]} held no lease {2 * LEASE_S + 2} s after its start"
                )
                victim = stand.instance_index(ids[0])
            await trio.sleep(rng.uniform(0.3, 0.8))
            victim_id = stand.instances[victim].id
            held = await _held(stand, victim_id, names)
            busy = held & await _accounts_with_work(stand, cid)
            seq += len(await stand.received_since(seq))
            killed = stand.kill_instance(victim)
            arrived: dict[str, float] = {}
            with trio.move_on_after(TAKEOVER_BOUND_S + 1.0):
                while set(arrived) < busy:
                    for record in await stand.received_since(seq):
                        seq = max(seq, int(record["seq"]))
                        account = record.get("bdAccountId")
                        delta = float(record["received_mono"]) - killed
                        if account in busy and delta > IN_FLIGHT_S and account not in arrived:
                            arrived[account] = round(delta, 3)
                    await trio.sleep(0.1)
            kill_monos.append((killed, busy))
            cycles.append(
                {"victim": victim_id, "held": len(held), "with_work": len(busy), "takeover_s": arrived}
            )
            await stand.restart_instance(victim)
        fault_over = dt.datetime.now(dt.UTC)
        completion_s = await stand.wait_completed([cid], within=60)
        figures, problems = await invariants(
            stand, [cid], gaps={str(a): GAP_S for a in accounts}, steps={cid: 2}, fault_over=fault_over
        )
        # Recomputed from every arrival: the polling above may have stopped at the bound.
        received = await stand.sandbox_get("received")
        times = []
        late = []
        for n, (killed, busy) in enumerate(kill_monos):
            for account, took in _takeovers(received, busy, killed).items():
                if took is None or took > TAKEOVER_BOUND_S:
                    late.append(f"cycle {n}: account {account} taken over after {took} s")
                if took is not None:
                    times.append(took)
        figures["cycles"] = cycles
        figures["takeover"] = _summary(times)
        figures["takeover_bound_s"] = TAKEOVER_BOUND_S
        figures["completion_after_last_restart_s"] = completion_s
        figures["instances_alive"] = [i.alive for i in stand.instances]
        problems.extend(problems_seen)
        if not times:
            problems.append("no takeover measured: the killed instance held no account with work left")
        if late:
            problems.append(
                f"accounts of a killed instance not taken over within {TAKEOVER_BOUND_S} s: {late}"
            )
        check("instances_sigkill_takeover", figures, problems)
    finally:
        await stand.close()


class _LeaseWatch:
    """Polls ``campaign_account_leases`` and keeps, per instance, the first lease it took after a given
    instant (``taken_at``, the database's clock): from then on that instance rightly sends again."""

    def __init__(self, stand: Stand, accounts: set[str]) -> None:
        self._stand = stand
        self._accounts = accounts
        self._since: dict[str, dt.datetime] = {}
        self.regained: dict[str, dt.datetime] = {}

        self._scope = trio.CancelScope()

    def watch(self, instance_id: str, since: dt.datetime) -> None:
        self._since[instance_id] = since
        self.regained.pop(instance_id, None)

    def stop(self) -> None:
        self._scope.cancel()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        with self._scope:
            while True:
                for account, lease in (await self._stand.leases()).items():
                    owner, taken = lease["owner"], lease["taken_at"]
                    since = self._since.get(owner)
                    new = account in self._accounts and since is not None and taken > since
                    if new and (owner not in self.regained or taken < self.regained[owner]):
                        self.regained[owner] = taken
                await trio.sleep(0.1)


async def _key_accounts(stand: Stand, cid: str) -> dict[str, str]:
    rows = await stand.store.fetch(
        "SELECT idempotency_key, bd_account_id::text AS account FROM campaign_sends WHERE campaign_id = $1",
        uuid.UUID(cid),
    )
    return {r["idempotency_key"]: r["account"] for r in rows}


def _witnessed_takeovers(
    other: MessagingWitness, key_accounts: dict[str, str], accounts: set[str], signalled_mono: float
) -> dict[str, float | None]:
    """Per account of the fenced instance: seconds from the fault to the other instance's first call for
    it (its own relay's stamp; the fenced instance may rightly send until its lease ends)."""
    out: dict[str, float | None] = {acc: None for acc in accounts}
    for call in other.calls:
        account = key_accounts.get(call.key or "")
        delta = call.mono - signalled_mono
        if account in out and delta > 0 and (out[account] is None or delta < out[account]):
            out[account] = round(delta, 3)
    return out


async def _fencing(
    stand: Stand,
    cid: str,
    instance_id: str,
    witness: MessagingWitness,
    lost_at: dt.datetime,
    regained: dt.datetime | None,
    until: dt.datetime,
) -> dict[str, Any]:
    """What ``instance_id`` started after its lease ran out (``lost_at`` + LEASE) and before it rightly
    held a lease again (``regained``, else ``until``): Messaging calls through its relay, and ledger rows
    whose claim it wrote with a call start in that window."""
    start = lost_at + dt.timedelta(seconds=LEASE_S)
    end = regained or until
    calls = witness.calls_between(start + dt.timedelta(seconds=STAMP_SLACK_S), end)
    rows = await stand.store.fetch(
        "SELECT idempotency_key, sent_at FROM campaign_sends"
        " WHERE campaign_id = $1 AND sent_by = $2 AND sent_at > $3 AND sent_at < $4",
        uuid.UUID(cid),
        instance_id,
        start,
        end,
    )
    return {
        "window": [start.isoformat(), end.isoformat()],
        "regained": None if regained is None else regained.isoformat(),
        "calls": [f"{c.key} at {c.at.isoformat()}" for c in calls],
        "ledger_rows": [f"{r['idempotency_key']} sent_at {r['sent_at'].isoformat()}" for r in rows],
    }


async def test_paused_instance_and_instance_cut_from_postgres__send_nothing_once_their_lease_has_run_out(
    store, database_url, tmp_path, nursery
):
    """Two instances, each calling the sandbox through its own recording relay; the second reaches
    PostgreSQL through a relay too. First the first instance is SIGSTOPped for LEASE + 2 s and resumed;
    once it holds a share again, the second's database relay is cut for LEASE + 2 s and restored. Neither
    starts a Messaging call, nor has a ledger row say it did, between its lease's end and the next lease
    it takes; the campaign completes with every invariant."""
    stand = await _open(tmp_path, store, database_url)
    ids = ["fence-a", "fence-b"]
    witnesses = [MessagingWitness(("127.0.0.1", stand.sandbox_port)) for _ in ids]
    for witness in witnesses:
        await nursery.start(witness.run)
    pg_relay = database_relay(database_url)
    await nursery.start(pg_relay.run)
    accounts = [await stand.org.bd_account() for _ in range(4)]
    names = {str(acc) for acc in accounts}
    watch = _LeaseWatch(stand, names)
    try:
        await stand.start_sandbox(*SANDBOX_ARGS, "--seed", "13")
        ia = await stand.start_instance(ids[0], {"MESSAGING_SERVICE_URL": witnesses[0].http_url})
        ib = await stand.start_instance(
            ids[1],
            {
                "MESSAGING_SERVICE_URL": witnesses[1].http_url,
                "DATABASE_URL": through_relay(database_url, pg_relay.port),
            },
        )
        cid = await _campaign(stand, accounts, contacts=110)
        await nursery.start(watch.run)
        problems_seen = []
        for index in (ia, ib):
            if not await _wait_held(stand, ids[index], names, within=2 * LEASE_S + 2):
                problems_seen.append(f"{ids[index]} held no lease {2 * LEASE_S + 2} s after the start")

        # The first instance paused past its lease.
        held_a = await _held(stand, ids[ia], names)
        busy_a = held_a & await _accounts_with_work(stand, cid)
        paused_at = dt.datetime.now(dt.UTC)
        watch.watch(ids[ia], paused_at)
        paused_mono = stand.pause_instance(ia)
        await trio.sleep(LEASE_S + 2)
        stand.resume_instance(ia)
        if not await _wait_held(stand, ids[ia], names, within=2 * LEASE_S + 2):
            problems_seen.append(f"{ids[ia]} held no lease {2 * LEASE_S + 2} s after SIGCONT")

        # The second instance cut off from PostgreSQL past its lease.
        held_b = await _held(stand, ids[ib], names)
        busy_b = held_b & await _accounts_with_work(stand, cid)
        cut_at = dt.datetime.now(dt.UTC)
        watch.watch(ids[ib], cut_at)
        cut_mono = time.monotonic()
        pg_relay.cut()
        await trio.sleep(LEASE_S + 2)
        pg_relay.restore()
        restored_at = dt.datetime.now(dt.UTC)

        completion_s = await stand.wait_completed([cid], within=60)
        ended_at = dt.datetime.now(dt.UTC)
        watch.stop()
        figures, problems = await invariants(
            stand, [cid], gaps={str(acc): GAP_S for acc in accounts}, steps={cid: 2}, fault_over=restored_at
        )
        key_accounts = await _key_accounts(stand, cid)
        # Beside each arrival pair under the gap, how far apart the two calls passed the instances' relays
        # (the first call of each key): the relays sit in this test process, whose own pauses can bunch up
        # arrivals that left the instances a gap apart.
        first_call: dict[str | None, float] = {}
        for witness in witnesses:
            for call in witness.calls:
                first_call[call.key] = min(call.mono, first_call.get(call.key, call.mono))
        under_gap = []
        for v in gap_violations(await stand.sandbox_get("received"), {str(acc): GAP_S for acc in accounts}):
            k1, k2 = v["keys"]
            relayed = k1 != k2 and k1 in first_call and k2 in first_call
            under_gap.append(
                {
                    "arrivals_delta_s": v["delta_s"],
                    "relays_delta_s": round(first_call[k2] - first_call[k1], 4) if relayed else None,
                }
            )
        fenced = {
            "paused": await _fencing(
                stand, cid, ids[ia], witnesses[ia], paused_at, watch.regained.get(ids[ia]), cut_at
            ),
            "cut_off": await _fencing(
                stand, cid, ids[ib], witnesses[ib], cut_at, watch.regained.get(ids[ib]), ended_at
            ),
        }
        figures["fencing"] = fenced
        figures["under_gap_pairs"] = under_gap
        figures["takeover_of_paused_s"] = _witnessed_takeovers(
            witnesses[ib], key_accounts, busy_a, paused_mono
        )
        figures["takeover_of_cut_off_s"] = _witnessed_takeovers(witnesses[ia], key_accounts, busy_b, cut_mono)
        figures["calls_by_instance"] = {i: len(w.calls) for i, w in zip(ids, witnesses, strict=True)}
        figures["completion_after_restore_s"] = completion_s
        figures["instances_alive"] = [i.alive for i in stand.instances]
        problems.extend(problems_seen)
        for what, found in fenced.items():
            if found["calls"]:
                problems.append(
                    f"{what} instance started Messaging calls after its lease ran out: {found['calls'][:5]}"
                )
            if found["ledger_rows"]:
                problems.append(
                    f"{what} instance has ledger rows started after its lease ran out: {found['ledger_rows'][:5]}"
                )
        check("instances_pause_and_cut", figures, problems)
    finally:
        watch.stop()
        await stand.close()


async def _terminate(stand: Stand, index: int, within: float = 20.0) -> None:
    """SIGTERM (a clean shutdown: sends finish, leases are released) and wait for the exit."""
    process = stand.instances[index].service.process
    process.terminate()
    with trio.fail_after(within):
        while process.poll() is None:
            await trio.sleep(0.05)


def _longest_pauses(received: list[dict[str, Any]], accounts: set[str], since: float, until: float) -> dict:
    """Per account, the longest time between two consecutive arrivals in [since, until]."""
    times: dict[str, list[float]] = collections.defaultdict(list)
    for record in received:
        at = float(record["received_mono"])
        if record.get("bdAccountId") in accounts and since <= at <= until:
            times[record["bdAccountId"]].append(at)
    return {
        account: round(max((b - a for a, b in itertools.pairwise(ts)), default=0.0), 3)
        for account, ts in ((a, sorted(t)) for a, t in times.items())
    }


async def test_a_rolling_restart_of_every_instance__no_account_pauses_beyond_one_lease(
    store, database_url, tmp_path
):
    """Three instances send; each in turn is stopped cleanly (SIGTERM) and started again under its id,
    waiting for it to hold leases again before the next. A stopped instance releases its accounts, the
    others take them at their next heartbeat and the restarted one takes its share back between sends:
    no account with work waits longer than one lease between two of its sends."""
    stand = await _open(tmp_path, store, database_url)
    ids = ["roll-a", "roll-b", "roll-c"]
    try:
        await stand.start_sandbox(*SANDBOX_ARGS, "--seed", "14")
        await stand.start_instances(*ids)
        accounts = [await stand.org.bd_account() for _ in range(9)]
        names = {str(a) for a in accounts}
        cid = await _campaign(stand, accounts, contacts=450)
        for instance_id in ids:
            await _wait_held(stand, instance_id, names, within=2 * LEASE_S + 2)
        began = time.monotonic()
        for index in range(len(ids)):
            await stand.use_instance((index + 1) % len(ids))
            await _terminate(stand, index)
            await stand.restart_instance(index)
            await _wait_held(stand, ids[index], names, within=2 * LEASE_S + 2)
        ended = time.monotonic()
        completion_s = await stand.wait_completed([cid], within=60)
        figures, problems = await invariants(
            stand, [cid], gaps={str(a): GAP_S for a in accounts}, steps={cid: 2}
        )
        received = await stand.sandbox_get("received")
        pauses = _longest_pauses(received, names, began, ended)
        longest = max(pauses.values(), default=None)
        figures["restart_window_s"] = round(ended - began, 2)
        figures["longest_pause_per_account_s"] = pauses
        figures["longest_pause_s"] = longest
        figures["completion_s"] = completion_s
        figures["instances_alive"] = [i.alive for i in stand.instances]
        if len(pauses) < len(names):
            problems.append(f"accounts without arrivals during the restarts: {names - set(pauses)}")
        if longest is None or longest > LEASE_S:
            problems.append(f"an account paused {longest} s during the rolling restart (lease {LEASE_S} s)")
        check("instances_rolling_restart", figures, problems)
    finally:
        await stand.close()
