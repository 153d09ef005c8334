"""The `monitoring_links` step: MONITORING_LINKS templates filled from settings and deploy data."""

from __future__ import annotations

from bot.config import Settings
from bot.runbook.model import Link, Outcome, Release
from bot.steps.registry import STEPS
from tests.helpers import StepHarness, make_settings, phase_in_default_runbook

FIELD = "Post-Deploy Monitoring Links"
INSPECTOR = "https://vercel.com/acme/pocket-philosopher/dpl_abc123"


def _release(deploy: dict[str, str] | None) -> Release:
    release = Release(id=42, environment="staging", ref="release/1.2.0", started_by="U1",
                      git_sha="0123456789abcdef")
    if deploy is not None:
        release.data["steps"] = {"deploy": deploy}
    return release


def _settings(**extra: object) -> Settings:
    values: dict[str, object] = {"STAGING_URL": "https://staging.pocketphilosopher.app/",
                                 "POSTHOG_HOST": "https://eu.posthog.com",
                                 "POSTHOG_PROJECT_ID": "12345"}
    values.update(extra)
    return make_settings(**values)


async def test_default_templates_with_deploy_data() -> None:
    deploy = {"inspector_url": INSPECTOR, "url": "pp-git-release-acme.vercel.app"}
    harness = StepHarness(_settings(), release=_release(deploy))
    result = await harness.run("monitoring_links")
    assert result.outcome == Outcome.OK
    assert result.summary == "3 monitoring links"
    assert result.links == [
        Link(label="Vercel deployment", url=INSPECTOR),
        Link(label="PostHog events", url="https://eu.posthog.com/project/12345/events"),
        Link(label="Health endpoint", url="https://staging.pocketphilosopher.app/api/health"),
    ]
    assert result.fields == {FIELD: "\n".join([
        f"Vercel deployment: {INSPECTOR}",
        "PostHog events: https://eu.posthog.com/project/12345/events",
        "Health endpoint: https://staging.pocketphilosopher.app/api/health",
    ])}
    assert harness.release.fields[FIELD] == result.fields[FIELD]
    assert result.data["left_out"] == []
    assert f"<{INSPECTOR}|Vercel deployment>" in result.details


async def test_without_deploy_data_the_inspector_link_is_left_out_with_a_note() -> None:
    result = await StepHarness(_settings(), release=_release(None)).run(
        "monitoring_links")
    assert result.outcome == Outcome.OK
    assert result.summary == "2 monitoring links (1 left out)"
    assert [link.label for link in result.links] == ["PostHog events", "Health endpoint"]
    assert result.data["left_out"] == ["Vercel deployment: left out, no value for {inspector_url}"]
    assert "_Vercel deployment: left out, no value for {inspector_url}_" in result.details
    assert "Vercel deployment" not in result.fields[FIELD]


async def test_all_placeholders() -> None:
    templates = ",".join([
        "Deployment|{deployment_url}",
        "Release|{staging_url}/releases/{release_id}?sha={sha}",
        "Replay|{posthog_host}/project/{posthog_project_id}/replay",
    ])
    deploy = {"inspector_url": INSPECTOR, "url": "pp-abc.vercel.app"}
    settings = _settings(MONITORING_LINKS=templates)
    result = await StepHarness(settings, release=_release(deploy)).run(
        "monitoring_links")
    assert [link.url for link in result.links] == [
        "https://pp-abc.vercel.app",
        "https://staging.pocketphilosopher.app/releases/42?sha=0123456789abcdef",
        "https://eu.posthog.com/project/12345/replay",
    ]


async def test_warns_when_no_link_can_be_built() -> None:
    settings = make_settings(MONITORING_LINKS="Vercel|{inspector_url},Grafana|{grafana_url}/d/1")
    result = await StepHarness(settings, release=_release(None)).run("monitoring_links")
    assert result.outcome == Outcome.WARN
    assert result.summary == (
        "No monitoring links could be built (Vercel: left out, no value for {inspector_url}; "
        "Grafana: left out, no value for {grafana_url})"
    )
    assert result.links == [] and result.fields == {}


async def test_empty_setting_warns() -> None:
    result = await StepHarness(make_settings(MONITORING_LINKS="")).run("monitoring_links")
    assert result.outcome == Outcome.WARN
    assert result.summary == "No monitoring links could be built (MONITORING_LINKS is empty)"


def test_registered_in_report_phase_without_requirements() -> None:
    sdef = STEPS["monitoring_links"]
    assert phase_in_default_runbook("monitoring_links") == "report"
    assert sdef.requires == () and sdef.requires_any == ()
    assert sdef.skip_reason(make_settings()) is None
