"""manifest.yml is valid against Slack's app manifest schema and declares what the bot uses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from tests.helpers import vendor_specs

REPO = Path(__file__).resolve().parents[1]

SPECS = vendor_specs()


def load_schema() -> tuple[dict, Registry]:
    top = SPECS / "slack-manifest.schema.json"
    if not top.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and Slack's manifest schema is missing at {top}")
        pytest.skip(f"Slack's manifest schema is not at {top}")
    registry: Registry = Registry()
    for path in SPECS.glob("slack-manifest.schema*.json"):
        schema = json.loads(path.read_text())
        resource = Resource.from_contents(schema)
        registry = registry.with_resource(path.name, resource)
        # The top-level schema refers to the versioned ones by their published URLs.
        registry = registry.with_resource(
            "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"
            + path.name.removeprefix("slack-"),
            resource)
    return json.loads(top.read_text()), registry


def manifest() -> dict:
    return yaml.safe_load((REPO / "manifest.yml").read_text())


def test_manifest_is_valid_against_slacks_schema() -> None:
    schema, registry = load_schema()
    errors = sorted(Draft7Validator(schema, registry=registry).iter_errors(manifest()),
                    key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_manifest_declares_the_command_the_bot_handles_and_only_needed_scopes() -> None:
    data = manifest()
    commands = [c["command"] for c in data["features"]["slash_commands"]]
    assert commands == ["/release"]
    # commands: /release; chat:write: threads and ephemerals; usergroups:read: the members of a
    # user group named in RELEASE_APPROVERS (usergroups.users.list, bot/chat/slack_groups.py).
    assert set(data["oauth_config"]["scopes"]["bot"]) == {"commands", "chat:write",
                                                          "usergroups:read"}
    assert data["settings"]["interactivity"]["is_enabled"] is True
    url = data["features"]["slash_commands"][0]["url"]
    assert url.endswith("/slack/events")
    assert data["settings"]["interactivity"]["request_url"] == url


def test_an_invalid_manifest_is_rejected() -> None:
    schema, registry = load_schema()
    broken = manifest()
    broken["features"]["slash_commands"][0]["command"] = "release"  # missing the slash
    del broken["display_information"]["name"]
    assert list(Draft7Validator(schema, registry=registry).iter_errors(broken))
