"""Flagger's default-provider flags: a flag beats its variable; addresses must be URLs."""

from __future__ import annotations

import argparse

import pytest

from canary.config import AlertSettings
from canary.domain.alerts import ProviderType
from canary.kube.alerting import default_target
from canary.notify.flags import AlertFlagError, add_alert_flags, alert_settings_from_args


def parse(argv: list[str], env: dict[str, str] | None = None) -> AlertSettings:
    parser = argparse.ArgumentParser()
    add_alert_flags(parser)
    return alert_settings_from_args(parser.parse_args(argv), env or {})


def test_flags_beat_variables_and_defaults_fill_the_rest() -> None:
    settings = parse(["--slack-url", "https://hooks.slack.example/a", "--slack-channel", "on-call"],
                     {"CANARY_SLACK_URL": "https://ignored.example/", "CANARY_SLACK_USER": "bot"})
    assert settings == AlertSettings(slack_url="https://hooks.slack.example/a", slack_channel="on-call",
                                     slack_user="bot")


def test_slack_wins_over_teams_as_in_flagger() -> None:
    both = parse(["--slack-url", "https://s.example/", "--msteams-url", "https://t.example/"])
    target = default_target(both)
    assert target is not None and target.type is ProviderType.SLACK
    teams = default_target(parse(["--msteams-url", "https://t.example/", "--msteams-proxy-url", "http://p:3128"]))
    assert teams is not None and (teams.type, teams.proxy) == (ProviderType.MSTEAMS, "http://p:3128")
    assert default_target(parse([])) is None


def test_an_address_that_is_not_a_url_is_refused_by_name() -> None:
    with pytest.raises(AlertFlagError, match="--slack-url"):
        parse([], {"CANARY_SLACK_URL": "hooks.slack.example"})
