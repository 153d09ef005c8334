"""Every Slack Web API call is redacted in one place: the client the bot builds.

Calls go to the Slack emulator; what it received is what Slack would have seen.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.slack import make_web_client, redacting
from bot.redact import MASK, default_redactor
from sandbox.server import serve
from tests.helpers import make_settings
from tests.mock_slack_api import SlackState, create_slack_app

TOKEN = "xoxb-sandbox-token"
PASSWORD = "123456"
LEAK = "ghp_abcdefghijklmnopqrstuvwxyz0123"


def _button() -> dict[str, object]:
    return {"type": "button", "text": {"type": "plain_text", "text": f"Apply {PASSWORD}"},
            "action_id": f"gate:apply-{PASSWORD}",
            "value": json.dumps({"release": int(PASSWORD), "gate": f"apply {PASSWORD}"})}


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    redactor = default_redactor()
    monkeypatch.setattr(redactor, "_secrets", list(redactor._secrets))
    redactor.add([PASSWORD])


async def test_messages_and_modals_are_redacted_but_ids_and_button_values_kept(secret: None) -> None:
    state = SlackState(token=TOKEN)
    async with serve(create_slack_app(state)) as url:
        client = make_web_client(make_settings(SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=url + "/api/"))
        blocks: list[dict[str, Any]] = [{"type": "section", "block_id": PASSWORD,
                   "text": {"type": "mrkdwn", "text": f"password {PASSWORD}, token {LEAK}"}},
                  {"type": "actions", "elements": [_button()]}]
        await client.chat_postMessage(channel="C0RELEASES", text=f"pw {PASSWORD}", blocks=blocks)
        await client.chat_postEphemeral(channel="C0RELEASES", user="U0ALICE",
                                        text=f"only you: {LEAK}", blocks=json.dumps(blocks))
        metadata = json.dumps({"release": int(PASSWORD)})
        view = {"type": "modal", "title": {"type": "plain_text", "text": "Roll back"},
                "private_metadata": metadata, "callback_id": "rollback",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"x {LEAK}"}}]}
        opened = await client.views_open(trigger_id="1.2.3", view=view)
        await client.views_update(view_id=opened["view"]["id"],
                                  view={**view, "title": {"type": "plain_text", "text": "Done"},
                                        "blocks": [{"type": "section", "text": {
                                            "type": "mrkdwn", "text": f"error: {PASSWORD}"}}]})

    posted, ephemeral = state.calls_to("chat.postMessage")[0], state.calls_to("chat.postEphemeral")[0]
    assert posted["text"] == f"pw {MASK}"
    sent = posted["blocks"]
    assert sent[0]["text"]["text"] == f"password {MASK}, token {MASK}"
    assert sent[0]["block_id"] == PASSWORD
    assert sent[1]["elements"][0] == {**_button(), "text": {"type": "plain_text", "text": f"Apply {MASK}"}}
    assert ephemeral["text"] == f"only you: {MASK}"
    whispered = ephemeral["blocks"]
    whispered = json.loads(whispered) if isinstance(whispered, str) else whispered
    assert LEAK not in json.dumps(whispered)
    assert whispered[1]["elements"][0]["value"] == _button()["value"]
    for method in ("views.open", "views.update"):
        sent_view = state.calls_to(method)[0]["view"]
        sent_view = json.loads(sent_view) if isinstance(sent_view, str) else sent_view
        assert sent_view["private_metadata"] == metadata
        assert LEAK not in json.dumps(sent_view)
        assert sent_view["blocks"][0]["text"]["text"] in (f"x {MASK}", f"error: {MASK}")


async def test_a_plain_client_made_redacting_keeps_its_token_and_url(secret: None) -> None:
    state = SlackState(token=TOKEN)
    async with serve(create_slack_app(state)) as url:
        plain = AsyncWebClient(token=TOKEN, base_url=url + "/api/")
        client = redacting(plain)
        assert redacting(client) is client
        response = await client.chat_postMessage(channel="C0RELEASES", text=f"pw {PASSWORD}")
    assert response["ok"] is True
    assert state.calls_to("chat.postMessage")[0]["text"] == f"pw {MASK}"
