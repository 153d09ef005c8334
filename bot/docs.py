"""Generate README's settings table from `bot.config.Settings` (a test keeps them in step)."""

from __future__ import annotations

from pydantic import SecretStr

from bot.config import Settings


def default_text(name: str) -> str:
    """A setting's default as README shows it."""
    field = Settings.model_fields[name]
    value = field.get_default(call_default_factory=True)
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return "`" + ", ".join(str(v) for v in value).replace("|", "\\|") + "`"
    if isinstance(value, SecretStr):
        return "—"
    return f"`{value}`"


def settings_table() -> str:
    """The markdown table of every setting: name, default, secret?, what it is for."""
    rows = ["| Setting | Default | Secret | What it is for |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        secret = "yes" if "SecretStr" in str(field.annotation) else ""
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {default_text(name)} | {secret} | {description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
