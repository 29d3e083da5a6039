"""The account reader (actors/account_reader.py): limiters reading their accounts at once are answered by
one statement, each with its own account's state, as a read of its own would give it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio
import trio.testing

from campaignsvc.actors.account_reader import AccountReader, ReaderStopped
from campaignsvc.storage import accounts as accounts_db


async def test_reads_waiting_together__each_its_own_account(nursery, store, org):
    accounts = [await org.bd_account(max_dm_per_day=10 + i) for i in range(30)]
    missing = uuid.uuid4()
    reader = AccountReader(store)
    answers: dict[int, Any] = {}

    async def read(i: int, account: uuid.UUID) -> None:
        answers[i] = await reader.read(account)

    wanted = [*accounts, accounts[0], missing]  # the same account twice, one that does not exist
    async with trio.open_nursery() as reading:
        for i, account in enumerate(wanted):
            reading.start_soon(read, i, account)
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(reader.run)
    assert (reader.batches, reader.read_rows) == (1, 32)
    for i, account in enumerate(accounts):
        assert answers[i] == (await store.run(accounts_db.limiter_states, [account]))[account]
        assert answers[i]["id"] == account and answers[i]["max_dm_per_day"] == 10 + i
    assert answers[30] == answers[0]
    assert answers[31] is None


async def test_a_lone_read__is_answered_at_once(nursery, store, org):
    account = await org.bd_account()
    reader = AccountReader(store)
    await nursery.start(reader.run)
    with trio.fail_after(10):
        assert (await reader.read(account))["id"] == account
        assert (await reader.read(account))["id"] == account
    assert reader.batches == 2


async def test_a_stopped_reader__tells_every_caller(store, org):
    account = await org.bd_account()
    reader = AccountReader(store)
    errors: list[BaseException] = []

    async def read() -> None:
        try:
            await reader.read(account)
        except ReaderStopped as exc:
            errors.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as reading:
            reading.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                scope.cancel()  # the service stops before the reader answered
                await reader.run()
    assert len(errors) == 1
    with pytest.raises(ReaderStopped):  # and a read after it stopped
        await reader.read(account)
