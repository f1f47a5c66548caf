"""Each chat system's body: the structure its API documents, the on-call content, escaping, limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from canary.domain.alerts import ProviderType, Severity
from canary.domain.status import Verdict
from canary.notify import discord, gchat, msteams, rocket, slack
from canary.notify.chat import ChatTarget, render
from canary.notify.message import AlertMessage, alert_message
from tests.notify.samples import check, rollback_notice

HOSTILE = "<!channel> @everyone *bold* _it_ `code` [link](http://x) & <http://evil|click> " + "x" * 9000


def message(text: str = "error-rate 7.5 > 1") -> AlertMessage:
    notice = rollback_notice(text, checks=(check("error-rate", Verdict.FAIL, 7.5, None, 1, text),))
    return alert_message(notice, Severity.ERROR)


def all_text(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False)


# --- Slack -------------------------------------------------------------------------------------


def test_slack_has_a_fallback_text_and_blocks_in_a_coloured_attachment() -> None:
    body = slack.render(message(), channel="on-call", username="canary")
    assert (body["channel"], body["username"]) == ("on-call", "canary")
    assert body["text"].startswith("shop/podinfo: RolledBack")
    [attachment] = body["attachments"]
    assert attachment["color"] == "#A30200"
    blocks = attachment["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "shop/podinfo: RolledBack",
                                                    "emoji": False}}
    assert all(b["type"] in ("header", "section") for b in blocks) and len(blocks) <= 50
    text = all_text(blocks)
    assert "error-rate: 7.5 outside [-inf, 1]" in text
    assert "kubectl annotate canary podinfo -n shop --overwrite canary.dev/rollback=" in text
    assert "canary rollback podinfo -n shop" in text


def test_slack_escapes_control_characters_and_keeps_to_its_limits() -> None:
    body = slack.render(message(HOSTILE), channel="c", username="u")
    text = all_text(body)
    assert "<!channel>" not in text and "<http://evil" not in text and "&lt;!channel&gt;" in text
    for block in body["attachments"][0]["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= slack.HEADER_LIMIT
        if "text" in block and block["type"] == "section":
            assert len(block["text"]["text"]) <= slack.SECTION_LIMIT
        for field in block.get("fields", []):
            assert len(field["text"]) <= slack.FIELD_LIMIT
        assert len(block.get("fields", [])) <= slack.FIELDS_MAX


# --- Microsoft Teams ---------------------------------------------------------------------------


def test_teams_posts_an_adaptive_card_message() -> None:
    body = msteams.render(message())
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"][0]["color"] == "Attention" and card["body"][0]["weight"] == "Bolder"
    [facts] = [b for b in card["body"] if b["type"] == "FactSet"]
    assert {"title": "Weight", "value": "20%"} in facts["facts"]
    monospace = [b["text"] for b in card["body"] if b.get("fontType") == "Monospace"]
    assert "canary pause podinfo -n shop" in monospace
    assert any(t.startswith("kubectl annotate canary podinfo -n shop") for t in monospace)
    assert "7.5 outside \\\\[-inf, 1\\\\]" in all_text(card)


def test_teams_escapes_markdown_and_stays_under_28_kb() -> None:
    body = msteams.render(message(HOSTILE))
    summary = body["attachments"][0]["content"]["body"][1]["text"]
    assert "\\*bold\\*" in summary and "\\[link\\]" in summary
    assert len(json.dumps(body).encode()) < 28 * 1024


# --- Discord -----------------------------------------------------------------------------------


def test_discord_sends_one_embed_and_pings_nobody() -> None:
    body = discord.render(message(), username="canary")
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert embed["color"] == 0xA30200 and embed["title"] == "shop/podinfo: RolledBack"
    names = [f["name"] for f in embed["fields"]]
    assert names[:5] == ["Canary", "Phase", "Weight", "Failed checks", "Revision"]
    assert "Failing checks" in names
    assert "canary promote podinfo -n shop" in all_text(embed)


def test_discord_keeps_every_embed_limit() -> None:
    body = discord.render(message(HOSTILE), username="u" * 200)
    [embed] = body["embeds"]
    assert len(embed["title"]) <= discord.TITLE_LIMIT and len(embed["description"]) <= discord.DESCRIPTION_LIMIT
    assert len(embed["fields"]) <= discord.FIELDS_MAX
    for field in embed["fields"]:
        assert len(field["name"]) <= discord.FIELD_NAME_LIMIT and len(field["value"]) <= discord.FIELD_VALUE_LIMIT
    total = len(embed["title"]) + len(embed["description"]) + sum(len(f["name"]) + len(f["value"])
                                                                  for f in embed["fields"])
    assert total <= discord.EMBED_TOTAL_LIMIT
    assert len(body["username"]) <= 80
    assert "\\*bold\\*" in embed["description"]


# --- Rocket.Chat -------------------------------------------------------------------------------


def test_rocket_chat_incoming_webhook_body() -> None:
    body = rocket.render(message(), channel="on-call", username="canary")
    assert (body["alias"], body["channel"]) == ("canary", "#on-call")
    [attachment] = body["attachments"]
    assert attachment["color"] == "#A30200"
    titles = [f["title"] for f in attachment["fields"]]
    assert titles[-1] == "Commands" and "Failing checks" in titles
    assert "canary rollback podinfo -n shop" in attachment["fields"][-1]["value"]
    assert rocket.render(message(), channel="@oncall", username="u")["channel"] == "@oncall"


def test_rocket_chat_escapes_markdown() -> None:
    body = rocket.render(message(HOSTILE), channel="c", username="u")
    assert "\\*bold\\*" in body["attachments"][0]["text"]
    assert len(body["attachments"][0]["text"]) <= 2 * rocket.TEXT_LIMIT


# --- Google Chat -------------------------------------------------------------------------------


def test_google_chat_sends_a_cards_v2_card_with_a_text_fallback() -> None:
    body = gchat.render(message())
    assert body["text"] == "shop/podinfo: RolledBack"
    [card] = body["cardsV2"]
    assert card["cardId"] == "canary-shop-podinfo"
    assert card["card"]["header"]["title"] == "shop/podinfo: RolledBack"
    headers = [s.get("header") for s in card["card"]["sections"]]
    assert headers == [None, "Release", "Failing checks", "Roll back, promote, pause"]
    assert "canary pause podinfo -n shop" in all_text(card)


def test_google_chat_escapes_html_and_limits_text() -> None:
    body = gchat.render(message(HOSTILE))
    first = body["cardsV2"][0]["card"]["sections"][0]["widgets"][0]["textParagraph"]["text"]
    assert "&lt;!channel&gt;" in first and "<http" not in first
    assert len(body["text"]) <= gchat.TEXT_LIMIT


# --- generic -----------------------------------------------------------------------------------


def test_generic_carries_the_facts_as_the_annotation_does() -> None:
    notice = rollback_notice()
    body = render(ChatTarget(ProviderType.GENERIC, "http://127.0.0.1/x"), alert_message(notice, Severity.ERROR),
                  notice)
    assert (body["name"], body["namespace"], body["reason"], body["severity"]) == ("podinfo", "shop", "RolledBack",
                                                                                    "error")
    assert body["facts"] == json.loads(notice.facts.to_annotation())
    assert body["commands"]["Roll back"]["canary"] == "canary rollback podinfo -n shop"


@pytest.mark.parametrize("kind", list(ProviderType), ids=lambda k: k.value)
def test_every_type_renders_json_that_names_the_failing_check(kind: ProviderType) -> None:
    notice = rollback_notice()
    body = render(ChatTarget(kind, "http://127.0.0.1/x"), alert_message(notice, Severity.ERROR), notice)
    text = json.dumps(body)
    assert "error-rate" in text and "7.5" in text and "podinfo" in text
