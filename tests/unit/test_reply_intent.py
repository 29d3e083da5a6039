"""Reply intent (domain/replies.py): the rule classifier on real-looking messages in English and Russian,
which reading a participant keeps after another reply, and which messages are automatic."""

from __future__ import annotations

import pytest

from campaignsvc.domain.replies import Intent, RuleClassifier, classify_text, is_automatic, merged

CASES = {
    Intent.UNSUBSCRIBE: [
        "Please unsubscribe me from this",
        "STOP",
        "Stop writing to me.",
        "remove me from your list",
        "Don't message me again",
        "this is spam",
        "Не пишите мне больше",
        "Отпишите меня, пожалуйста",
        "Хватит писать!",
        "уберите меня из рассылки",
        "Это спам",
    ],
    Intent.WRONG_PERSON: [
        "Sorry, wrong person",
        "I no longer work at Acme",
        "You have the wrong number",
        "Вы ошиблись, это не я",
        "Я уже не работаю в этой компании",
        "Не по адресу",
    ],
    Intent.NOT_INTERESTED: [
        "Not interested, thanks",
        "No thanks",
        "not relevant for us right now",
        "Не интересно",
        "Нет, спасибо",
        "Нам это неактуально",
        "Не хочу",
    ],
    Intent.INTERESTED: [
        "Interested! Let's talk next week",
        "Sounds good, send details",
        "Call me tomorrow",
        "Давайте созвонимся в четверг",
        "Интересно, расскажите подробнее",
        "Да, актуально",
    ],
    Intent.QUESTION: [
        "How much does it cost?",
        "What is the price for 10 seats",
        "And who are you?",
        "Сколько стоит?",
        "Какая цена за год",
        "А что за сервис?",
    ],
    Intent.UNKNOWN: ["ok", "👍", "", "   ", "Привет"],
}


@pytest.mark.parametrize(("intent", "text"), [(i, t) for i, texts in CASES.items() for t in texts])
def test_rules__read_the_intent_of_real_looking_replies(intent, text):
    assert classify_text(text) == intent


def test_rules__the_stronger_reading_wins_when_a_message_says_two_things():
    assert classify_text("Interesting, but not interested. Stop writing") == Intent.UNSUBSCRIBE
    assert classify_text("Not interested — how much is it anyway?") == Intent.NOT_INTERESTED
    assert classify_text("Неинтересно, не пишите") == Intent.UNSUBSCRIBE


async def test_classifier__is_the_rules_behind_the_async_interface():
    assert await RuleClassifier().classify("Отпишите меня") == Intent.UNSUBSCRIBE


def test_merged__keeps_the_first_reading_a_correction_and_lets_unsubscribe_through():
    assert merged(None, None, Intent.QUESTION) == Intent.QUESTION
    assert merged(Intent.INTERESTED, None, Intent.QUESTION) == Intent.INTERESTED
    assert merged(Intent.UNKNOWN, None, Intent.INTERESTED) == Intent.INTERESTED
    assert merged(Intent.INTERESTED, None, Intent.UNSUBSCRIBE) == Intent.UNSUBSCRIBE
    assert merged(Intent.NOT_INTERESTED, "person", Intent.UNSUBSCRIBE) == Intent.NOT_INTERESTED


def test_automatic__offline_and_business_bot_messages():
    assert is_automatic({"isOffline": True})
    assert is_automatic({"viaBusinessBotId": "12345"})
    assert not is_automatic({"isOffline": False, "viaBusinessBotId": None})
    assert not is_automatic({"isOffline": "yes"})  # only a real true counts
    assert not is_automatic({})
