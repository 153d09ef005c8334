"""Reading why `npm ci` failed: the package whose install script broke, and whether it was the network.

npm 10 reports a failed lifecycle script as (npm 9 and older spell the prefix `npm ERR!`):

    npm error code 1
    npm error path /app/node_modules/supabase
    npm error command failed
    npm error command sh -c node scripts/postinstall.js
    npm error FetchError: request to https://github.com/... failed, reason: getaddrinfo ENOTFOUND github.com
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.providers.shell import strip_ansi

_PREFIX = r"^npm (?:error|ERR!) "
_PATH = re.compile(_PREFIX + r"path (.+?)\s*$", re.MULTILINE)
_COMMAND = re.compile(_PREFIX + r"command (?!failed\s*$)(.+?)\s*$", re.MULTILINE)
_NETWORK = re.compile(r"\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|"
                      r"EHOSTUNREACH|getaddrinfo|socket hang up|request to \S+ failed)\b")
_SHELL = re.compile(r"^(?:sh|bash|cmd(?:\.exe)?) (?:-c|/d /s /c) ")


@dataclass(frozen=True)
class InstallScriptFailure:
    """An install script that failed during `npm ci`."""

    package: str
    script: str
    reason: str
    network: bool


def _package(path: str) -> str:
    """`@scope/name` or `name` from a `…/node_modules/<package>` path."""
    tail = path.rsplit("node_modules/", 1)[-1].strip("/")
    parts = tail.split("/")
    return "/".join(parts[:2]) if parts[0].startswith("@") and len(parts) > 1 else parts[0]


def _reason(text: str) -> tuple[str, bool]:
    """The most telling error line (`FetchError: … ENOTFOUND github.com`), and whether it is the network."""
    lines = [re.sub(_PREFIX, "", line).strip() for line in text.splitlines()
             if re.match(_PREFIX, line)]
    errors = [line for line in lines if re.match(r"^(?:\w+Error|Error)\b", line)]
    network = [line for line in errors if _NETWORK.search(line)]
    if network:
        return network[0], True
    if any(_NETWORK.search(line) for line in lines):
        return (errors[0] if errors else ""), True
    return (errors[0] if errors else ""), False


def install_script_failure(output: str) -> InstallScriptFailure | None:
    """The failed install script in `npm ci` output, or None when the failure was something else."""
    text = strip_ansi(output)
    path, command = _PATH.search(text), _COMMAND.search(text)
    if not path or not command or "node_modules" not in path.group(1):
        return None
    reason, network = _reason(text)
    return InstallScriptFailure(package=_package(path.group(1)),
                                script=_SHELL.sub("", command.group(1)),
                                reason=reason[:300], network=network)
