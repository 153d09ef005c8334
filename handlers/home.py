"""App Home: `app_home_opened` (Home tab) publishes the bot's Home view (bot.home) for the user.

Bolt acknowledges the event itself; the view is built from the release log and published with
`views.publish`. The Messages tab's openings are ignored; so is an event without a user.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import home
from handlers.safety import USER_ID, field

if TYPE_CHECKING:
    from bot.chat.port import Chat
    from bot.redact import Redactor
    from bot.store import Store
    from bot.watch import Watcher

log = logging.getLogger(__name__)


def register(app: AsyncApp, store: Store, environment: str, watcher: Watcher | None, chat: Chat,
             redactor: Redactor) -> None:
    """Register the Home tab: the log of `environment` in `store`, `watcher`'s open watches."""

    @app.event("app_home_opened")
    async def opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        user = field(event, "user")
        if not USER_ID.fullmatch(user) or field(event, "tab") not in ("", "home"):
            return
        watches = watcher.open_watches() if watcher is not None else []
        data = await home.gather(store, environment, watches, chat)
        view = redactor.data(home.home_view(data))
        try:
            await client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("could not publish the Home tab: %s",
                        exc.response.get("error") if exc.response else type(exc).__name__)
