from __future__ import annotations

import random
from collections import Counter
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignsvc.domain.templates import (
    PLACEHOLDERS,
    Personaliser,
    RenderContext,
    Rendered,
    Skip,
    StubPersonaliser,
    TemplateError,
    normalise_whitespace,
    parse,
    render,
    validate_template,
)
from campaignsvc.domain.validation import FieldError

ANNA = {"first_name": "Anna", "last_name": "Lee", "display_name": "Anna L.", "username": "anna_l"}


def ctx(contact=None, company="Acme", ai="") -> RenderContext:
    return RenderContext(contact=ANNA if contact is None else contact, company_name=company, ai_text=ai)


def text(content: str, context: RenderContext | None = None, seed: int = 0) -> str:
    result = render(parse(content), context or ctx(), random.Random(seed))
    assert isinstance(result, Rendered), result
    return result.text


def skipped(content: str, context: RenderContext | None = None, seed: int = 0) -> Skip:
    result = render(parse(content), context or ctx(), random.Random(seed))
    assert isinstance(result, Skip), result
    return result


def error(content: str) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        parse(content)
    return info.value


# --- placeholders ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Hi {{contact.first_name}}!", "Hi Anna!"),
        ("{{contact.last_name}}", "Lee"),
        ("{{contact.display_name}}", "Anna L."),
        ("@{{contact.username}}", "@anna_l"),
        ("at {{company.name}}", "at Acme"),
        ("{{contact.first_name}} {{contact.last_name}} of {{company.name}}", "Anna Lee of Acme"),
    ],
)
def test_render__each_placeholder(content, expected):
    assert text(content) == expected


def test_render__values_are_trimmed():
    assert text("Hi {{contact.first_name}}!", ctx({"first_name": "  Bo \t"})) == "Hi Bo!"


def test_render__display_name_falls_back_to_first_and_last_name():
    assert text("{{contact.display_name}}", ctx({"first_name": "Anna", "last_name": "Lee"})) == "Anna Lee"
    assert text("{{contact.display_name}}", ctx({"first_name": "Anna", "display_name": " "})) == "Anna"


def test_render__username_without_leading_at():
    assert text("@{{contact.username}}", ctx({"username": "@anna"})) == "@anna"


@pytest.mark.parametrize(
    "content",
    [
        "Hi {{contact.first_name|there}}!",
        "Hi {{ contact.first_name | there }}!",
        "Hi {{contact.first_name |there}}!",
        "Hi {{\tcontact.first_name|  there\t}}!",
    ],
)
def test_render__fallback_when_value_missing_whitespace_tolerated(content):
    assert text(content, ctx({"first_name": None})) == "Hi there!"
    assert text(content, ctx({"first_name": "  "})) == "Hi there!"
    assert text(content, ctx({})) == "Hi there!"
    assert text(content) == "Hi Anna!"


def test_render__fallback_may_have_spaces_and_punctuation():
    assert text("Dear {{contact.first_name|my dear friend}}, hello", ctx({})) == "Dear my dear friend, hello"
    assert text("{{contact.first_name|Hi, there!}}", ctx({})) == "Hi, there!"


def test_render__empty_fallback_renders_nothing():
    assert text("Hi {{contact.last_name|}} there", ctx({})) == "Hi there"


def test_render__missing_value_without_fallback_skips_with_missing_data():
    assert skipped("Hi {{contact.first_name}}", ctx({"first_name": ""})) == Skip(
        "missing_data", "contact.first_name"
    )
    assert skipped("at {{company.name}}", ctx(company=None)) == Skip("missing_data", "company.name")
    assert skipped("{{contact.display_name}}", ctx({})) == Skip("missing_data", "contact.display_name")


def test_render__ai_personalize_uses_the_personaliser_text():
    t = parse("Hi {{contact.first_name}}. {{ai.personalize}}")
    assert t.uses_ai
    assert render(t, ctx(ai=" Loved your talk. "), random.Random(0)) == Rendered("Hi Anna. Loved your talk.")


def test_render__ai_personalize_empty_is_not_missing_data():
    assert text("Hi {{contact.first_name}}. {{ai.personalize}}") == "Hi Anna."
    assert text("Hi. {{ai.personalize|Have a nice day.}}") == "Hi. Have a nice day."
    assert skipped("{{ai.personalize}}") == Skip("missing_data", "empty message")


def test_parse__fields_and_uses_ai():
    t = parse("{Hi {{contact.first_name}}|Hello {{ contact.display_name|there }}} from {{company.name}}")
    assert t.fields == frozenset({"contact.first_name", "contact.display_name", "company.name"})
    assert not t.uses_ai
    assert parse("plain").fields == frozenset()
    assert parse("{{ai.personalize}}").fields == frozenset()


def test_parse__every_documented_placeholder_is_known():
    for name in PLACEHOLDERS:
        parse("{{" + name + "}}")
        parse("{{ " + name + " | fallback }}")


# --- spintax -------------------------------------------------------------------------------------------


def test_render__spintax_picks_each_option_uniformly():
    t = parse("{Hi|Hello|Hey} there")
    rng = random.Random(42)
    counts = Counter(render(t, ctx(), rng).text for _ in range(3000))
    assert set(counts) == {"Hi there", "Hello there", "Hey there"}
    assert all(850 < c < 1150 for c in counts.values())


def test_render__nested_spintax():
    t = parse("{a|{b|c}}")
    rng = random.Random(1)
    counts = Counter(render(t, ctx(), rng).text for _ in range(4000))
    assert set(counts) == {"a", "b", "c"}
    assert 1800 < counts["a"] < 2200  # the outer choice is uniform: b and c share the other half


def test_render__nested_spintax_as_the_first_option():
    seen = {text("{{a|b}|c}", seed=s) for s in range(50)}
    assert seen == {"a", "b", "c"}
    seen = {text("{{Dr.|Prof.} {{contact.last_name}}|Hi}", seed=s) for s in range(50)}
    assert seen == {"Dr. Lee", "Prof. Lee", "Hi"}


def test_render__empty_option_allowed_when_another_is_not():
    seen = {text("Thanks{|!}", seed=s) for s in range(50)}
    assert seen == {"Thanks", "Thanks!"}


def test_render__option_spaces_are_kept_then_normalised():
    seen = {text("{Hi | Hello }there", seed=s) for s in range(50)}
    assert seen == {"Hi there", "Hello there"}


def test_render__placeholder_inside_spintax_only_counts_when_picked():
    t = parse("{Hi {{contact.first_name}}|Hello}!")
    results = {render(t, ctx({}), random.Random(s)) for s in range(50)}
    assert results == {Rendered("Hello!"), Skip("missing_data", "contact.first_name")}


def test_render__pipe_outside_spintax_is_plain_text():
    assert text("A | B || C") == "A | B || C"


def test_render__ai_placeholder_is_never_sent_as_braces():
    assert "{" not in text("{{ai.personalize}} Hi")


# --- whitespace ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hi  \t there", "Hi there"),
        ("line one  \n   line two", "line one\nline two"),
        ("a\n\n\nb", "a\n\n\nb"),
        ("a \n \n b", "a\n\nb"),
        ("  \n padded \n  ", "padded"),
        ("\t", ""),
    ],
)
def test_normalise_whitespace__as_v1(raw, expected):
    assert normalise_whitespace(raw) == expected


def test_render__empty_result_is_skipped():
    assert skipped("") == Skip("missing_data", "empty message")
    assert skipped("  \n\t ") == Skip("missing_data", "empty message")
    assert skipped("{{contact.last_name|}}", ctx({})) == Skip("missing_data", "empty message")


def test_render__missing_placeholder_around_spaces_collapses():
    assert text("Hi {{contact.last_name|}} , ok", ctx({})) == "Hi , ok"


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "position", "words"),
    [
        ("Hello {{contact.email}}", 6, "unknown placeholder {{contact.email}}"),
        ("Hello {{ first_name }}", 6, "unknown placeholder {{first_name}}"),
        ("{{Hi|Hello}} there", 0, "single braces"),
        ("x {{ }}", 2, "unknown placeholder"),
        ("Hello {{contact.first_name}", 6, "`{{` needs a matching `}}`"),
        ("Hello {{contact.first_name", 6, "`{{` needs a matching `}}`"),
        ("Hi {single} there", 3, "use plain text, or add options"),
        ("{}", 0, "single option"),
        ("ok {|}", 3, "only empty options"),
        ("ok { | }", 3, "only empty options"),
        ("Hi {a|b", 3, "`{` needs a matching `}`"),
        ("{a|{b|c}", 0, "`{` needs a matching `}`"),
        ("Hi a|b} there", 6, "`}` without a matching `{`"),
        ("Hi }} there", 3, "`}}` without a matching `{{`"),
        ("{a|b}} x", 5, "`}` without a matching `{`"),
        ("{a|{single}}", 3, "single option"),
        ("{Hi {{contact.nickname}}|Hey}", 4, "unknown placeholder"),
        ("x {{contact.first_name}|y}", 2, "`{{` needs a matching `}}`"),
    ],
)
def test_parse__errors_say_what_and_where(content, position, words):
    exc = error(content)
    assert exc.position == position
    assert words in exc.message
    assert exc.field_errors() == [FieldError("content", f"{exc.message} (at position {position})")]


def test_parse__unknown_placeholder_lists_the_known_ones():
    message = error("{{contact.email}}").message
    assert all(name in message for name in PLACEHOLDERS)


def test_validate_template__ok_and_error_with_position():
    assert validate_template("Hi {{contact.first_name|there}}, {a|b}") == []
    assert validate_template("") == []
    [problem] = validate_template("Hi {single}")
    assert problem.path == "content"
    assert "position 3" in problem.message
    assert validate_template(None) == [FieldError("content", "must be a string")]
    assert validate_template(5, path="steps.0.content")[0].path == "steps.0.content"


# --- personaliser ------------------------------------------------------------------------------------


async def test_stub_personaliser__returns_its_fixed_text():
    default: Personaliser = StubPersonaliser()
    assert await default.personalize(contact=ANNA, company_name="Acme", campaign_id=UUID(int=1)) == ""
    fixed = StubPersonaliser("Saw your post.")
    assert await fixed.personalize(contact={}, company_name=None, campaign_id=UUID(int=1)) == "Saw your post."


# --- properties --------------------------------------------------------------------------------------

pieces = st.sampled_from(["{", "}", "|", "{{", "}}", "a", " ", "\n", "{{contact.first_name}}", "{{x}}", "."])


@settings(max_examples=200, deadline=None)
@given(st.lists(pieces, max_size=20).map("".join))
def test_parse__arbitrary_brace_soup_is_parsed_or_rejected_with_a_position(content):
    try:
        t = parse(content)
    except TemplateError as exc:
        assert 0 <= exc.position < len(content)
        assert validate_template(content) != []
        return
    assert validate_template(content) == []
    result = render(t, ctx(), random.Random(0))
    if isinstance(result, Rendered):
        assert "{" not in result.text and "}" not in result.text
        assert result.text == result.text.strip()


_fields = st.builds(
    lambda name, fallback: "{{" + name + fallback + "}}",
    st.sampled_from(PLACEHOLDERS),
    st.sampled_from(["", "|x"]),
)
valid_templates = st.recursive(
    st.one_of(st.sampled_from(["a", "b.", " ", ", ", "!\n", "\t", "Hi  "]), _fields),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map("".join),
        st.lists(inner, min_size=2, max_size=3)
        .filter(lambda options: any(o.strip() for o in options))
        .map(lambda options: "{" + "|".join(options) + "}"),
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(valid_templates, st.integers(0, 2**32))
def test_render__generated_valid_templates_render_without_braces(content, seed):
    result = render(parse(content), ctx(ai="AI"), random.Random(seed))
    if isinstance(result, Rendered):
        assert "{" not in result.text and "}" not in result.text and "|" not in result.text
        assert "  " not in result.text and " \n" not in result.text and "\n " not in result.text
    else:
        assert result.reason == "missing_data"
