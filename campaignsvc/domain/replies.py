"""What a contact's message is: an automatic answer or a person's reply, and the intent a reply carries.

Telegram marks away and greeting messages (``message.offline``) and messages sent by a connected business
bot (``via_business_bot_id``); the CRM passes them on as ``isOffline`` and ``viaBusinessBotId``. Such a
message is not a reply: it does not stop the sequence (usecases/inbound.py).

A person's reply is classified by a :class:`ReplyClassifier`. The default, :class:`RuleClassifier`, reads
English and Russian phrases; the interface is async so a model-backed classifier can replace it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol


class Intent(StrEnum):
    INTERESTED = "interested"
    QUESTION = "question"
    NOT_INTERESTED = "not_interested"
    UNSUBSCRIBE = "unsubscribe"
    WRONG_PERSON = "wrong_person"
    UNKNOWN = "unknown"


# Intents a rep counts as a good outcome (A/B ranking, the positive share of replies).
POSITIVE = frozenset({Intent.INTERESTED, Intent.QUESTION})


def is_automatic(data: Mapping[str, Any]) -> bool:
    """The message was sent for the contact, not by them: an away/greeting message or a business bot."""
    return data.get("isOffline") is True or bool(data.get("viaBusinessBotId"))


class ReplyClassifier(Protocol):
    async def classify(self, text: str) -> Intent: ...


def _phrases(*items: str) -> re.Pattern[str]:
    """Whole words or phrases (a trailing ``*`` matches any ending: Russian inflects)."""
    parts = []
    for item in items:
        stem = re.escape(item.rstrip("*")).replace(r"\ ", r"\s+")
        parts.append(rf"\b{stem}\w*" if item.endswith("*") else rf"\b{stem}\b")
    return re.compile("|".join(parts))


# Checked in this order: the first that matches wins, so "not interested" is never read as "interested"
# and "stop, wrong person" unsubscribes.
_RULES: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (
        Intent.UNSUBSCRIBE,
        _phrases(
            "unsubscribe*",
            "stop",
            "stop writing",
            "stop messaging",
            "stop texting",
            "remove me",
            "take me off",
            "opt out",
            "do not contact",
            "don't contact",
            "dont contact",
            "do not message",
            "don't message",
            "don't write",
            "dont write",
            "do not write",
            "leave me alone",
            "spam",
            "отпиш*",
            "не пиши*",
            "не присылай*",
            "не беспокой*",
            "хватит писать",
            "хватит спамить",
            "удалите меня",
            "уберите меня",
            "отстань*",
            "спам*",
            "стоп",
            "заблокир*",
        ),
    ),
    (
        Intent.WRONG_PERSON,
        _phrases(
            "wrong person",
            "wrong number",
            "wrong guy",
            "not the right person",
            "you have the wrong",
            "no longer work",
            "don't work there",
            "dont work there",
            "not me",
            "who is this",
            "не по адресу",
            "вы ошиблись",
            "ошиблись номером",
            "не тот человек",
            "не туда",
            "уже не работаю",
            "больше не работаю",
            "не работаю там",
            "кто это",
        ),
    ),
    (
        Intent.NOT_INTERESTED,
        _phrases(
            "not interested",
            "no interest",
            "no thanks",
            "no thank you",
            "not now",
            "not relevant",
            "not for us",
            "we're good",
            "we are good",
            "no need",
            "not looking",
            "не интересно",
            "неинтересно",
            "не интересует",
            "не надо",
            "не нужно",
            "нет спасибо",
            "нет, спасибо",
            "не актуально",
            "неактуально",
            "не сейчас",
            "не требуется",
            "не хочу",
            "не хотим",
        ),
    ),
    (
        Intent.INTERESTED,
        _phrases(
            "interested",
            "sounds good",
            "sounds great",
            "let's talk",
            "lets talk",
            "let's chat",
            "call me",
            "let's schedule",
            "book a call",
            "book a demo",
            "schedule a call",
            "tell me more",
            "send details",
            "send me details",
            "i'm in",
            "yes please",
            "count me in",
            "интересно",
            "интересует",
            "давайте созвон*",
            "созвон*",
            "давайте обсудим",
            "расскажите подробнее",
            "подробнее",
            "звоните",
            "позвоните",
            "актуально",
            "хочу",
            "согласен",
            "согласна",
        ),
    ),
    (
        Intent.QUESTION,
        _phrases(
            "how much",
            "what is",
            "what's",
            "how does",
            "how do",
            "price",
            "pricing",
            "cost",
            "who are you",
            "сколько",
            "какая цена",
            "какова цена",
            "почём",
            "почем",
            "стоимость",
            "что за",
            "как это",
        ),
    ),
)


def _normal(text: str) -> str:
    return " ".join(text.casefold().replace("ё", "е").replace("’", "'").split())


def classify_text(text: str) -> Intent:
    """The rule-based reading of one message."""
    normal = _normal(text)
    if not normal:
        return Intent.UNKNOWN
    for intent, pattern in _RULES:
        if pattern.search(normal):
            return intent
    return Intent.QUESTION if "?" in normal else Intent.UNKNOWN


class RuleClassifier:
    """The default :class:`ReplyClassifier`: :func:`classify_text`."""

    async def classify(self, text: str) -> Intent:
        return classify_text(text)


def merged(current: str | None, current_by: str | None, new: Intent) -> str | None:
    """The participant's intent after another reply: a person's correction stays; otherwise the first
    reply's reading stays, unless it said nothing (unknown) or the new reply unsubscribes."""
    if current_by == "person":
        return current
    if current is None or current == Intent.UNKNOWN or new == Intent.UNSUBSCRIBE:
        return new
    return current
