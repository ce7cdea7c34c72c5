"""The event bus's subscriptions, and the per-project locks that exist only while used."""

from __future__ import annotations

import asyncio

from agentpty.service.event_bus import BusEvent, EventBus, Subscription
from agentpty.service.keyed import KeyedConditions, KeyedLocks


async def test_a_waiting_subscriber_gets_each_event_in_order() -> None:
    bus = EventBus()
    subscription, replay, resync = bus.subscribe()
    assert (replay, resync) == ([], False)
    got = asyncio.ensure_future(subscription.get())
    await asyncio.sleep(0)
    assert not got.done()
    first = bus.publish("state", "p1", n=1)
    bus.publish("state", "p1", n=2)
    assert await got is first
    second = await subscription.get()
    assert second is not None and second.data == {"n": 2}
    assert subscription.pending() == []


async def test_a_subscriber_that_falls_behind_is_cut_off_and_the_others_go_on() -> None:
    bus = EventBus(subscriber_limit=3)
    slow, _, _ = bus.subscribe()
    fast, _, _ = bus.subscribe(accept=lambda event: event.project_id == "p2")
    for n in range(4):
        bus.publish("state", "p1", n=n)
    bus.publish("state", "p2", n=9)
    assert slow.cut_off
    # What it had queued is dropped: it reconnects with its last id and is replayed.
    assert await slow.get() is None
    assert [event async for event in slow] == []
    assert bus.subscribers == 1
    event = await fast.get()
    assert event is not None and event.data == {"n": 9}
    fast.close()
    assert await fast.get() is None
    assert bus.subscribers == 0


async def test_closing_the_bus_ends_a_waiting_subscriber() -> None:
    bus = EventBus()
    subscription, _, _ = bus.subscribe()
    iterating = asyncio.ensure_future(_collect(subscription))
    bus.publish("state", "p1")
    await asyncio.sleep(0)
    bus.close()
    assert [event.type for event in await asyncio.wait_for(iterating, 5)] == ["state"]
    late, _, _ = bus.subscribe()
    assert late.cut_off and await late.get() is None


async def _collect(subscription: Subscription) -> list[BusEvent]:
    return [event async for event in subscription]


async def test_keyed_locks_serialise_one_key_and_are_dropped_after_use() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(name: str, key: str) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", "p1"), hold("b", "p1"), hold("c", "p2"))
    # a and b never overlap; c (another key) does not wait for them.
    assert order.index("a-") < order.index("b+")
    assert order.index("c+") < order.index("a-")
    assert len(locks) == 0


async def test_keyed_conditions_wake_waiters_of_their_key_only() -> None:
    conditions = KeyedConditions()
    answered = {"p1": False, "p2": False}

    async def done(key: str) -> bool:
        return answered[key]

    waiter = asyncio.ensure_future(conditions.wait_until("p1", lambda: done("p1")))
    other = asyncio.ensure_future(conditions.wait_until("p2", lambda: done("p2")))
    await asyncio.sleep(0)
    answered["p1"] = True
    await conditions.notify("p1")
    await asyncio.wait_for(waiter, 5)
    assert not other.done()
    await conditions.notify("nobody")  # nobody waits: nothing is made
    assert len(conditions) == 1
    answered["p2"] = True
    await conditions.notify("p2")
    await asyncio.wait_for(other, 5)
    assert len(conditions) == 0
