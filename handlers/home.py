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
from bot.watch import Watcher
from handlers.safety import USER_ID, field

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the Home tab."""
    watcher = next((x for x in runtime.listeners if isinstance(x, Watcher)), None)

    @app.event("app_home_opened")
    async def opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        user = field(event, "user")
        if not USER_ID.fullmatch(user) or field(event, "tab") not in ("", "home"):
            return
        watches = watcher.open_watches() if watcher is not None else []
        data = await home.gather(runtime.store, runtime.settings.ENVIRONMENT, watches, runtime.chat)
        view = runtime.redactor.data(home.home_view(data))
        try:
            await client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("could not publish the Home tab: %s",
                        exc.response.get("error") if exc.response else type(exc).__name__)
