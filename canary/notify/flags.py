"""The default alert provider's flags, Flagger's names: ``--slack-url``, ``--slack-channel``,
``--slack-user``, ``--slack-proxy-url``, ``--msteams-url``, ``--msteams-proxy-url``.

Kept beside the notifiers rather than in the CLI module so that the flags and the settings they
fill change together; ``canary run`` registers them with :func:`add_alert_flags` and reads them
with :func:`alert_settings_from_args` (a flag wins over its ``CANARY_*`` variable).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from canary.config import AlertSettings
from canary.domain.fields import http_url
from canary.errors import SpecError

__all__ = ["ALERT_FLAGS", "AlertFlagError", "add_alert_flags", "alert_settings_from_args"]

#: dest -> help
ALERT_FLAGS = {
    "slack_url": "Slack incoming webhook for Canaries without spec.analysis.alerts",
    "slack_channel": f"channel of --slack-url (default: {AlertSettings().slack_channel})",
    "slack_user": f"name the posts show (default: {AlertSettings().slack_user})",
    "slack_proxy_url": "HTTP(S) proxy for --slack-url",
    "msteams_url": "Microsoft Teams incoming webhook, used when --slack-url is not set",
    "msteams_proxy_url": "HTTP(S) proxy for --msteams-url",
}
_URLS = ("slack_url", "slack_proxy_url", "msteams_url", "msteams_proxy_url")


class AlertFlagError(ValueError):
    """A flag or variable value the controller cannot use; the message names it."""


def _env_name(dest: str) -> str:
    return "CANARY_" + dest.upper()


def add_alert_flags(parser: argparse.ArgumentParser) -> None:
    for dest, help_text in ALERT_FLAGS.items():
        parser.add_argument("--" + dest.replace("_", "-"), dest=dest, metavar="URL" if dest in _URLS else "NAME",
                            help=f"{help_text} [env {_env_name(dest)}]")


def alert_settings_from_args(ns: argparse.Namespace, env: Mapping[str, str]) -> AlertSettings:
    """The flags, else their variables, else the defaults. Pure."""
    values: dict[str, str] = {}
    for dest in ALERT_FLAGS:
        flag = getattr(ns, dest, None)
        value = str(flag) if flag is not None else env.get(_env_name(dest), "").strip()
        if not value:
            continue
        if dest in _URLS:
            try:
                http_url(value, "--" + dest.replace("_", "-"))
            except SpecError as exc:
                raise AlertFlagError(str(exc)) from exc
        values[dest] = value
    return AlertSettings(**values)
