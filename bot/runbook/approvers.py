"""Who may answer a gate: RELEASE_APPROVERS holds Slack user IDs (`U…`, `W…`) and user-group
IDs (`S…`); a member of a listed group may answer when the engine is given a way to look
groups up (`Engine.group_members`, e.g. bot.chat.slack_groups.members_of)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

GroupMembers = Callable[[str], Awaitable[set[str]]]


def is_group(slack_id: str) -> bool:
    """User-group IDs start with S."""
    return slack_id.startswith("S")


def mention(slack_id: str) -> str:
    """`<@U…>` for a user, `<!subteam^S…>` for a user group."""
    return f"<!subteam^{slack_id}>" if is_group(slack_id) else f"<@{slack_id}>"


async def may_approve(user: str, approvers: list[str], group_members: GroupMembers | None) -> bool:
    """Whether `user` is listed, or is a member of a listed group (when groups can be looked up)."""
    if not approvers or user in approvers:
        return True
    if group_members is None:
        return False
    for group in filter(is_group, approvers):
        try:
            if user in await group_members(group):
                return True
        except Exception as exc:  # a lookup failure refuses, it never lets anyone through
            log.warning("could not list the members of user group %s: %s", group, exc)
    return False
