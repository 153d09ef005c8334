"""The per-channel pacer, on a fake clock: order kept, posts spaced, any window within Slack's limit."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bench.release_calls import peak
from bot.chat.blocks import Message
from bot.chat.pacing import ChannelPacer
from bot.chat.slack import SlackChat


class FakeClock:
    """Time that moves only when someone sleeps (or a post takes time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def _post_all(pacer: ChannelPacer, clock: FakeClock, jobs: list[tuple[str, str]],
                    took: float = 0.0) -> list[tuple[str, str, float, float]]:
    """Run every (channel, name) job at once; each records (channel, name, start, end)."""
    done: list[tuple[str, str, float, float]] = []

    async def post(channel: str, name: str) -> None:
        async with pacer.turn(channel):
            start = clock()
            clock.now += took  # the call itself takes time
            await asyncio.sleep(0)
            done.append((channel, name, start, clock()))

    await asyncio.gather(*(post(channel, name) for channel, name in jobs))
    return done


async def test_a_burst_in_one_channel_goes_out_in_order_one_a_second() -> None:
    clock = FakeClock()
    pacer = ChannelPacer(1.0, clock=clock, sleep=clock.sleep)
    done = await _post_all(pacer, clock, [("C1", f"step{i}") for i in range(12)])
    assert [name for _, name, _, _ in done] == [f"step{i}" for i in range(12)]
    starts = [start for _, _, start, _ in done]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(starts))
    assert peak(starts, 1.0) == 1
    assert peak(starts, 3.0) == 3  # never more than 3 in any 3 seconds
    assert starts[0] == 100.0  # the first post of a channel does not wait


async def test_spacing_counts_from_the_end_of_a_slow_post() -> None:
    clock = FakeClock()
    pacer = ChannelPacer(1.0, clock=clock, sleep=clock.sleep)
    done = await _post_all(pacer, clock, [("C1", "a"), ("C1", "b"), ("C1", "c")], took=0.4)
    for (_, _, _, end), (_, _, start, _) in itertools.pairwise(done):
        assert start - end >= 1.0  # Slack sees them a second apart however slow the first was


async def test_channels_do_not_wait_for_each_other() -> None:
    clock = FakeClock()
    pacer = ChannelPacer(1.0, clock=clock, sleep=clock.sleep)
    done = await _post_all(pacer, clock, [("C1", "a"), ("C2", "x"), ("C1", "b"), ("C2", "y")])
    starts = {name: start for _, name, start, _ in done}
    assert starts["a"] == starts["x"] == 100.0
    assert starts["b"] - starts["a"] >= 1.0 and starts["y"] - starts["x"] >= 1.0
    assert {c: [n for ch, n, _, _ in done if ch == c] for c in ("C1", "C2")} == {
        "C1": ["a", "b"], "C2": ["x", "y"]}


async def test_a_post_after_a_quiet_second_does_not_wait() -> None:
    clock = FakeClock()
    pacer = ChannelPacer(1.0, clock=clock, sleep=clock.sleep)
    await _post_all(pacer, clock, [("C1", "a")])
    clock.now += 5
    await _post_all(pacer, clock, [("C1", "b")])
    assert clock.sleeps == []


async def test_a_failed_post_still_ends_its_turn() -> None:
    clock = FakeClock()
    pacer = ChannelPacer(1.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(RuntimeError):
        async with pacer.turn("C1"):
            raise RuntimeError("Slack said no")
    assert not pacer.waiting("C1")
    done = await _post_all(pacer, clock, [("C1", "next")])
    assert done[0][2] >= 101.0  # the failed call counted: Slack may have seen it


async def test_interval_zero_never_sleeps() -> None:
    clock = FakeClock()
    pacer = ChannelPacer(0.0, clock=clock, sleep=clock.sleep)
    done = await _post_all(pacer, clock, [("C1", str(i)) for i in range(5)])
    assert [name for _, name, _, _ in done] == ["0", "1", "2", "3", "4"]
    assert clock.sleeps == []


class _Client:
    """Stands in for AsyncWebClient: records chat.postMessage and chat.update with the time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, str, float]] = []

    async def chat_postMessage(self, **kwargs: object) -> dict[str, str]:
        self.calls.append(("post", str(kwargs["text"]), self.clock()))
        await asyncio.sleep(0)
        return {"ts": f"{len(self.calls)}.0"}

    async def chat_update(self, **kwargs: object) -> None:
        self.calls.append(("update", str(kwargs["text"]), self.clock()))


async def test_slack_chat_paces_posts_but_not_updates() -> None:
    clock = FakeClock()
    client = _Client(clock)
    chat = SlackChat(client, ChannelPacer(1.0, clock=clock, sleep=clock.sleep))  # type: ignore[arg-type]

    async def update() -> None:
        await chat.update("C1", "1.0", Message(text="parent"))

    await asyncio.gather(*(chat.post("C1", Message(text=f"reply {i}"), "1.0") for i in range(4)),
                         update())
    posts = [(text, at) for kind, text, at in client.calls if kind == "post"]
    assert [text for text, _ in posts] == [f"reply {i}" for i in range(4)]
    assert [at for _, at in posts] == [100.0, 101.0, 102.0, 103.0]
    assert ("update", "parent", 100.0) in client.calls  # an update never waits for the posts
