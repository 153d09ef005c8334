"""The release log: SQLite through sqlite-utils, schema created and migrated here.

One row per release (what people query as plain columns, the guide's template fields among
them; its steps and data in one compressed body), one row per gate decision. Every engine
transition is written here before it is announced.

- `schema.py`: the tables and their migrations (`legacy.py`: the layouts they convert from);
- `rows.py`: a release to its row and back; `body.py`: the body's format;
- `base.py`: the connection and its transactions; `releases.py`, `decisions.py`,
  `env_locks.py`, `rollbacks.py`: what each table answers. `Store` is all of them on one file.
"""

from __future__ import annotations

from bot.store.decisions import Decisions
from bot.store.env_locks import EnvLocks
from bot.store.releases import Releases
from bot.store.rollbacks import Rollbacks
from bot.store.rows import FIELD_COLUMNS
from bot.store.schema import migrations


class Store(Releases, Decisions, EnvLocks, Rollbacks):
    """Release log over one SQLite database (a path, or ':memory:')."""


__all__ = ["FIELD_COLUMNS", "Store", "migrations"]
