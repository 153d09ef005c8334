"""The Slack Web API emulator (`tests/mock_slack_api.py`) in a process of its own.

`python bench/slack_emulator.py PORT` serves it on 127.0.0.1:PORT. Besides the emulator's routes:
`GET /healthz` (ready) and `GET /bench/counts` (how many Web API calls and `response_url`
payloads it has received), so the load bench can wait until the bot has finished answering.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from sandbox.server import serve
from tests.mock_slack_api import STATE_KEY, SlackState, create_slack_app

BOT_TOKEN = "xoxb-sandbox-token"


async def counts(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({"calls": len(state.calls),
                              "responses": sum(len(v) for v in state.responses.values())})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def main(port: int) -> None:
    state = SlackState(token=BOT_TOKEN)
    state.accept_any_channel = True
    app = create_slack_app(state)
    app.router.add_get("/bench/counts", counts)
    app.router.add_get("/healthz", healthz)
    async with serve(app, port=port):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
