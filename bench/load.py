"""Signed slash commands at N concurrent clients, A/B against the bare Bolt app.

A round sends `requests` `/release <text>` commands from `clients` concurrent clients (each on its
own keep-alive connection, one request at a time) and records each acknowledgement's latency
(request sent to response read) and the round's throughput (acks per second of wall time). Rounds
alternate between the two apps, flipping which goes first every round; after each round the
bench waits until the Slack emulator stops receiving the bot's follow-up answers, so one app's
leftover work never lands in the other's round.
"""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bench.procs import SIGNING_SECRET

USER = "U0ALICE"  # a user the Slack emulator knows (ephemeral answers need one)
CHANNEL = "C0RELEASES"


def signed_command(text: str, slack_url: str, *,
                   secret: str = SIGNING_SECRET) -> tuple[bytes, dict[str, str]]:
    """A `/release <text>` slash command as Slack sends it: form body and signature headers."""
    key = uuid.uuid4().hex[:12]
    body = urlencode({
        "token": "legacy-verification-token", "team_id": "T0SANDBOX", "team_domain": "sandbox",
        "channel_id": CHANNEL, "channel_name": "releases", "user_id": USER, "user_name": "alice",
        "command": "/release", "text": text, "api_app_id": "A0RELEASEBOT",
        "response_url": f"{slack_url}/response/{key}", "trigger_id": f"trigger-{key}",
    })
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body) or "",
    }
    return body.encode(), headers


def nearest_rank(latencies: list[float], p: float) -> float:
    """The `p`th percentile of `latencies` by nearest rank (nan when there are none)."""
    ordered = sorted(latencies)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


@dataclass
class Samples:
    """Latencies (seconds, every ack, and each round's apart) and per-round throughputs (acks
    per second) of one app."""

    latencies: list[float] = field(default_factory=list)
    throughputs: list[float] = field(default_factory=list)
    errors: int = 0
    rounds: list[list[float]] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        """The median over rounds of each round's percentile. At 50 clients a round's slowest
        acks are its first burst, so a pooled p99 is the worst burst of any round: one stall of
        the shared machine during one round decides it, for whichever app was running. The
        median round is what the app does; `pooled` keeps every ack of every round."""
        if self.rounds:
            return statistics.median(nearest_rank(r, p) for r in self.rounds)
        return self.pooled(p)

    def pooled(self, p: float) -> float:
        """The percentile of every ack of every round together."""
        return nearest_rank(self.latencies, p)

    @property
    def throughput(self) -> float:
        return statistics.median(self.throughputs) if self.throughputs else float("nan")


async def run_round(url: str, text: str, slack_url: str, *, clients: int, requests: int,
                    samples: Samples) -> None:
    """One round against `url`: `requests` commands from `clients` concurrent clients."""
    prepared = [signed_command(text, slack_url) for _ in range(requests)]
    queue = iter(prepared)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def client() -> None:
            for body, headers in queue:
                t0 = time.perf_counter()
                try:
                    async with http.post(f"{url}/slack/events", data=body, headers=headers) as r:
                        await r.read()
                        ok = r.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    samples.errors += 1

        started = time.perf_counter()
        # The client's own garbage collection must not be timed as an app's ack (this process
        # holds a whole sandbox release by now; a full collection pauses it ~100 ms): off for
        # the round, as `timeit` does, and run between rounds.
        gc.disable()
        try:
            await asyncio.gather(*(client() for _ in range(clients)))
        finally:
            gc.enable()
        samples.throughputs.append(requests / (time.perf_counter() - started))
        gc.collect()
    samples.latencies.extend(latencies)
    samples.rounds.append(latencies)


async def settle(slack_url: str, quiet: float = 0.3, cap: float = 60.0) -> None:
    """Wait until the Slack emulator has received nothing new for `quiet` seconds."""
    async with aiohttp.ClientSession() as http:
        last, since, deadline = None, time.perf_counter(), time.perf_counter() + cap
        while time.perf_counter() < deadline:
            async with http.get(f"{slack_url}/bench/counts") as r:
                now = await r.json()
            if now != last:
                last, since = now, time.perf_counter()
            elif time.perf_counter() - since >= quiet:
                return
            await asyncio.sleep(0.05)


async def ab(apps: dict[str, str], text: str, slack_url: str, *, clients: int, requests: int,
             rounds: int) -> dict[str, Samples]:
    """`rounds` A/B rounds (order flipped every round) after one uncounted warm-up round each."""
    names = list(apps)
    for name in names:
        await run_round(apps[name], text, slack_url, clients=clients, requests=min(requests, 20),
                        samples=Samples())
        await settle(slack_url)
    results = {name: Samples() for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            await run_round(apps[name], text, slack_url, clients=clients, requests=requests,
                            samples=results[name])
            await settle(slack_url)
    return results
