""""Manual Tests", asked of the person who started the release instead of guessed.

When a release succeeds, its starter gets (ephemerally, in the release channel) a button that
opens a form: free text plus checkboxes from MANUAL_TEST_CHECKLIST (handlers/manual_tests.py).
The answer fills the release log's "Manual Tests" field (the automated checks have their own,
"Automated Checks") and is shown in the release's thread. Unanswered after
MANUAL_TESTS_REMIND_MINUTES, one reminder goes to the thread (a persistent APScheduler job,
`manual-tests-<id>`, so a restart keeps it).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.chat import blocks
from bot.chat.blocks import Message
from bot.chat.port import Chat
from bot.config import Settings
from bot.listener import Listener, guarded
from bot.redact import Redactor, escape
from bot.runbook.model import Release, ReleaseStatus, utcnow
from bot.scheduler import PERSISTENT, job_key, register_target, target
from bot.store import Store

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

log = logging.getLogger(__name__)

MANUAL_TESTS_ACTION = "release_manual_tests"
FIELD = "Manual Tests"
TARGET = "manual_tests"
MAX_TEXT = 2000


class ManualTestsError(Exception):
    """An answer that cannot be recorded; the message says why."""


def field_text(checked: list[str], text: str, user: str) -> str:
    """What the "Manual Tests" field holds: the checked items, then the free text, then who."""
    parts = [f"✓ {item}" for item in checked]
    if text.strip():
        parts.append(text.strip())
    return "; ".join(parts) + f" (by {user})"


def prompt_message(release: Release, remind: bool = False) -> Message:
    """The question with its button (ephemeral to the starter; the reminder goes to the thread)."""
    who = blocks.user_text(release.started_by)
    text = (f":test_tube: {who}, release #{release.id} is on staging. What did you test by hand? "
            "Your answer goes into the release log's *Manual Tests*.")
    if remind:
        text = f":bell: Reminder: {text}"
    message = blocks.note_message(text)
    message.blocks.append({
        "type": "actions", "block_id": f"manual-tests-{release.id}",
        "elements": [{"type": "button", "action_id": MANUAL_TESTS_ACTION, "value": str(release.id),
                      "style": "primary", "text": {"type": "plain_text", "text": "Record manual tests"}}],
    })
    return message


class ManualTests(Listener):
    """Asks, records and reminds; a listener of the engine."""

    def __init__(self, settings: Settings, store: Store, chat: Chat, redactor: Redactor) -> None:
        self.settings = settings
        self.store = store
        self.chat = chat
        self.redact = redactor
        self.scheduler: BaseScheduler | None = None
        self.key = job_key(settings)
        register_target(self.key, TARGET, self)

    def attach(self, scheduler: BaseScheduler) -> None:
        """Schedule reminders on `scheduler` from now on."""
        self.scheduler = scheduler
        register_target(self.key, TARGET, self)

    async def release_finished(self, release: Release) -> None:
        if release.status == ReleaseStatus.SUCCEEDED:
            await guarded(self.ask(release), "asking for manual tests")

    async def ask(self, release: Release) -> None:
        """Send the starter the button, and schedule the one reminder."""
        assert release.id is not None
        if release.channel:
            try:
                await self.chat.ephemeral(release.channel, release.started_by,
                                          self._clean(prompt_message(release)))
            except Exception as exc:  # e.g. started from the CLI: no Slack user to whisper to
                log.info("could not ask %s for manual tests: %s", release.started_by,
                         self.redact(str(exc))[:200])
        minutes = self.settings.MANUAL_TESTS_REMIND_MINUTES
        if self.scheduler is not None and minutes > 0:
            self.scheduler.add_job(
                "bot.manual_tests:remind_job", "date", run_date=utcnow() + timedelta(minutes=minutes),
                id=f"manual-tests-{release.id}", name=f"Manual Tests reminder of release #{release.id}",
                args=[self.key, release.id], jobstore=PERSISTENT, replace_existing=True,
                misfire_grace_time=None)

    def may_answer(self, release: Release, user: str) -> bool:
        """The starter answers; so may a release operator when operators are configured."""
        return user == release.started_by or user in self.settings.RELEASE_OPERATORS

    async def record(self, release_id: int, user: str, checked: list[str], text: str) -> Release:
        """Store the answer in "Manual Tests" (the log keeps it as typed) and show it in the thread."""
        release = self.store.get_release(release_id)
        if release is None:
            raise ManualTestsError(f"Release #{release_id} does not exist.")
        if not self.may_answer(release, user):
            raise ManualTestsError(f"Only {blocks.user_text(release.started_by)}, who started "
                                   f"release #{release_id}, records its manual tests.")
        known = [item for item in self.settings.MANUAL_TEST_CHECKLIST if item in checked]
        if not known and not text.strip():
            raise ManualTestsError("Tick what you tested or describe it.")
        release.fields[FIELD] = field_text(known, text[:MAX_TEXT], user)
        self.store.save_release(release)
        self._cancel_reminder(release_id)
        lines = [f":memo: *Manual Tests* for release #{release_id}, by {blocks.user_text(user)}:"]
        lines += [f"• :white_check_mark: {escape(item)}" for item in known]
        if text.strip():
            lines.append(f"• {escape(text.strip()[:MAX_TEXT])}")
        await self._thread(release, blocks.note_message("\n".join(lines)))
        return release

    async def remind(self, release_id: int) -> bool:
        """The one reminder, when "Manual Tests" is still empty; True when sent."""
        release = self.store.get_release(release_id)
        if release is None or release.status != ReleaseStatus.SUCCEEDED:
            return False
        if release.fields.get(FIELD, "").strip() or release.data.get("manual_tests_reminded"):
            return False
        release.data["manual_tests_reminded"] = utcnow().isoformat()
        self.store.save_release(release)
        await self._thread(release, prompt_message(release, remind=True))
        return True

    def _cancel_reminder(self, release_id: int) -> None:
        if self.scheduler is None:
            return
        try:
            self.scheduler.remove_job(f"manual-tests-{release_id}", jobstore=PERSISTENT)
        except Exception:  # JobLookupError: already sent, or never scheduled here
            return

    def _clean(self, message: Message) -> Message:
        return Message(text=self.redact(message.text), blocks=self.redact.data(message.blocks),
                       summary=self.redact(message.summary))

    async def _thread(self, release: Release, message: Message) -> None:
        if not release.channel or not release.thread_ts:
            return
        try:
            await self.chat.post(release.channel, self._clean(message), release.thread_ts)
        except Exception as exc:
            log.error("posting manual tests to %s failed: %s", release.channel,
                      self.redact(str(exc))[:300])


async def remind_job(key: str, release_id: int) -> None:
    """The persistent job: the reminder of release `release_id`, in this process."""
    found: Any = target(key, TARGET)
    if not isinstance(found, ManualTests):
        log.warning("manual tests reminder of #%s: nothing registered for %s here", release_id, key)
        return
    await found.remind(release_id)
