"""Members of a Slack user group (`usergroups.users.list`, scope `usergroups:read`), cached
briefly, so a user group in RELEASE_APPROVERS lets its members answer gates."""

from __future__ import annotations

import time

from slack_sdk.web.async_client import AsyncWebClient

from bot.runbook.approvers import GroupMembers

CACHE_SECONDS = 60.0


def members_of(client: AsyncWebClient, cache_seconds: float = CACHE_SECONDS) -> GroupMembers:
    """A lookup for `Engine.group_members`: group ID -> its members' user IDs."""
    cache: dict[str, tuple[float, set[str]]] = {}

    async def lookup(group: str) -> set[str]:
        hit = cache.get(group)
        if hit is not None and time.monotonic() - hit[0] < cache_seconds:
            return hit[1]
        response = await client.usergroups_users_list(usergroup=group)
        members = {str(user) for user in response.get("users") or []}
        cache[group] = (time.monotonic(), members)
        return members

    return lookup
