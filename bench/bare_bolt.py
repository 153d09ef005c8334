"""The yardstick: a bare Bolt `AsyncApp` whose only `/release` listener does `await ack()`.

Served by the same slack-bolt and aiohttp as `release-bot serve` (`POST /slack/events`,
`GET /healthz`), with the same signing secret and Web API URL, from the environment:
SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL, PORT.
"""

from __future__ import annotations

import os

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build() -> web.Application:
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"],
                   process_before_response=False)

    @app.command("/release")
    async def release(ack: AsyncAck) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    web_app.router.add_get("/healthz", healthz)
    return web_app


if __name__ == "__main__":
    web.run_app(build(), host="127.0.0.1", port=int(os.environ["PORT"]), print=None,
                access_log=None)
