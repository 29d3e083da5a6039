from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignsvc.domain.audience_import import (
    ContactRow,
    Record,
    detect_delimiter,
    format_record,
    header_columns,
    parse_contacts_csv,
    parse_username_list,
    quote_field,
    read_records,
    spreadsheet_safe,
)


def fields(text: str, delimiter: str | None = None) -> list[tuple[str, ...]]:
    return [r.fields for r in read_records(text, delimiter)]


def rows(text: str, has_header: bool = True) -> list[ContactRow]:
    return list(parse_contacts_csv(text, has_header=has_header).rows)


# --- RFC 4180 reading ---------------------------------------------------------------------------------


def test_read__plain_records_with_crlf_lf_and_cr_line_ends():
    assert fields("a,b\r\nc,d\ne,f\rg,h") == [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]


def test_read__final_line_break_is_optional():
    assert fields("a,b\r\n") == fields("a,b") == [("a", "b")]


def test_read__quoted_fields_hold_delimiters_line_breaks_and_escaped_quotes():
    text = 'name,note\r\n"Smith, John","said ""hi""\r\nthen left",x\r\n'
    assert fields(text) == [("name", "note"), ("Smith, John", 'said "hi"\r\nthen left', "x")]


def test_read__empty_and_quoted_empty_fields():
    assert fields('a,,"",b\n,\n') == [("a", "", "", "b"), ("", "")]


def test_read__blank_line_is_a_single_empty_field():
    assert fields("a\n\nb\n") == [("a",), ("",), ("b",)]


def test_read__bom_is_dropped():
    assert fields("\ufeffa;b\n", ";") == [("a", "b")]
    assert fields('\ufeff"a",b') == [("a", "b")]


def test_read__stray_quotes_inside_unquoted_fields_are_literal():
    assert fields('5" screen,ok\n') == [('5" screen', "ok")]


def test_read__text_after_a_closing_quote_is_kept():
    assert fields('"abc"def,g\n') == [("abcdef", "g")]


def test_read__line_numbers_count_physical_lines():
    records = list(read_records('a\n"multi\nline\nfield",b\nc\n'))
    assert [r.line for r in records] == [1, 2, 5]


def test_read__unterminated_quote_spoils_only_its_record():
    records = list(read_records('a,b\n"open,c\nd,e\n'))
    assert records == [
        Record(1, ("a", "b")),
        Record(2, (), error="unterminated quoted field"),
        Record(3, ("d", "e")),
    ]


def test_read__unterminated_quote_on_the_last_line():
    assert list(read_records('a\n"open')) == [
        Record(1, ("a",)),
        Record(2, (), error="unterminated quoted field"),
    ]


def test_read__empty_text_has_no_records():
    assert fields("") == []
    assert fields("\ufeff") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,c\n", ","),
        ("a;b;c\n", ";"),
        ("a\tb\tc\n", "\t"),
        ("single\n", ","),
        ('"x;y;z",b\n', ","),  # delimiters inside quotes do not count
        ("a;b,c;d\n", ";"),
        ("a,b;c\n", ","),  # a tie goes to the comma
        ("\n\n  \na;b\nc,d,e,f\n", ";"),  # the first non-blank record decides
        ("\ufeffa;b\n", ";"),
        ('"multi\nline;;;",b,c\n', ","),
    ],
)
def test_detect_delimiter(text, expected):
    assert detect_delimiter(text) == expected


def test_read__semicolon_file_is_detected():
    assert fields('first_name;telegram_id\r\n"Doe; Jane";123\r\n') == [
        ("first_name", "telegram_id"),
        ("Doe; Jane", "123"),
    ]


# --- writing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "plain"),
        ("", ""),
        ("a,b", '"a,b"'),
        ('say "hi"', '"say ""hi"""'),
        ("two\nlines", '"two\nlines"'),
        ("cr\r", '"cr\r"'),
        ("\ufeffbom", '"\ufeffbom"'),
        ("a;b", '"a;b"'),
        ("tab\there", '"tab\there"'),
    ],
)
def test_quote_field(value, quoted):
    assert quote_field(value) == quoted


def test_format_record__crlf_and_delimiter():
    assert format_record(["a", "b;c"], ";") == 'a;"b;c"\r\n'


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("@cmd", "'@cmd"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-1+2", "'-1+2"),
        ("+7 916 123-45-67", "+7 916 123-45-67"),
        ("-42", "-42"),
        ("Ivan", "Ivan"),
        ("", ""),
    ],
)
def test_spreadsheet_safe(value, safe):
    assert spreadsheet_safe(value) == safe


field_text = st.text(alphabet=st.sampled_from(list('ab ,;\t"\r\nЖ\ufeff')), max_size=8)
records_st = st.lists(st.lists(field_text, min_size=1, max_size=5), min_size=1, max_size=6)


@given(records_st, st.sampled_from([",", ";", "\t"]))
def test_round_trip__quote_then_parse_gives_the_fields_back(records, delimiter):
    text = "".join(format_record(r, delimiter) for r in records)
    assert fields(text, delimiter) == [tuple(r) for r in records]


@given(records_st, st.sampled_from([",", ";", "\t"]))
def test_round_trip__delimiter_is_detected_from_a_first_record_of_several_fields(records, delimiter):
    first = records[0]
    if len(first) < 2 or not any(f.strip() for f in first):
        first = ["x", *first]
    text = "".join(format_record(r, delimiter) for r in [first, *records[1:]])
    assert detect_delimiter(text) == delimiter


@given(st.text(max_size=200), st.booleans())
def test_parse_never_raises_and_rows_are_unique(text, has_header):
    plan = parse_contacts_csv(text, has_header=has_header)
    keys = [k for row in plan.rows for k in row.identifiers()]
    assert len(keys) == len(set(keys))
    assert all(row.identifiers() for row in plan.rows)
    assert len(plan.samples) <= 10


# --- CSV contacts -------------------------------------------------------------------------------------


def test_csv__header_columns_map_to_contact_fields():
    text = (
        "\ufeffFirst Name;Last-Name;Telegram ID;Username;E-Mail;Phone\r\n"
        "Ivan;Petrov;123456;@Ivan_P;Ivan@Example.com;+7 916 000-00-00\r\n"
    )
    assert rows(text) == [
        ContactRow(
            line=2,
            first_name="Ivan",
            last_name="Petrov",
            telegram_id="123456",
            username="ivan_p",
            email="ivan@example.com",
            phone="+7 916 000-00-00",
        )
    ]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("telegram", "telegram_id"),
        ("tg_id", "telegram_id"),
        ("Телеграм", "telegram_id"),
        ("nickname", "username"),
        ("mail", "email"),
        ("Телефон", "phone"),
        ("name", "first_name"),
        ("Имя", "first_name"),
        ("Фамилия", "last_name"),
        ("surname", "last_name"),
    ],
)
def test_csv__header_aliases(header, field):
    assert header_columns(["x", header]) == {field: 1}


def test_csv__original_header_names_and_name_defaults():
    text = "name,telegram\nAnn,@ann_smith\n,777\n"
    assert rows(text) == [
        ContactRow(line=2, first_name="Ann", username="ann_smith"),
        ContactRow(line=3, first_name="Contact", telegram_id="777"),
    ]


def test_csv__unnamed_first_column_is_the_name_as_in_the_original():
    assert rows("Client,Telegram\nAcme,12345\n") == [
        ContactRow(line=2, first_name="Acme", telegram_id="12345")
    ]


def test_csv__name_falls_back_to_the_username_as_typed():
    assert rows("username\n@Some_One\n") == [ContactRow(line=2, first_name="Some_One", username="some_one")]


def test_csv__without_header_columns_are_detected_from_the_cells():
    text = "Ivan,Petrov,123456,@ivan_p,ivan@x.io,+7 900 1\nAnn,,777,,,\n"
    assert rows(text, has_header=False) == [
        ContactRow(
            line=1,
            first_name="Ivan",
            last_name="Petrov",
            telegram_id="123456",
            username="ivan_p",
            email="ivan@x.io",
            phone="+7 900 1",
        ),
        ContactRow(line=2, first_name="Ann", telegram_id="777"),
    ]


def test_csv__without_header_a_minority_of_odd_cells_does_not_change_the_column():
    text = "\n".join(["111", "222", "oops", "333"]) + "\n"
    plan = parse_contacts_csv(text, has_header=False)
    assert [r.telegram_id for r in plan.rows] == ["111", "222", "333"]
    assert plan.invalid == 1 and plan.samples == ("line 3: invalid telegram id 'oops'",)


def test_csv__without_header_single_column_of_bare_usernames():
    plan = parse_contacts_csv("ivan_petrov\nann_smith\n", has_header=False)
    assert [r.username for r in plan.rows] == ["ivan_petrov", "ann_smith"]


def test_csv__second_digits_column_is_a_phone():
    assert rows("111,79160000000\n", has_header=False) == [
        ContactRow(line=1, first_name="Contact", telegram_id="111", phone="79160000000")
    ]


def test_csv__header_that_is_really_data_is_read_as_data():
    plan = parse_contacts_csv("123456,@ivan_petrov,Ivan\n777,,Ann\n", has_header=True)
    assert [(r.line, r.telegram_id, r.username, r.first_name) for r in plan.rows] == [
        (1, "123456", "ivan_petrov", "Ivan"),
        (2, "777", None, "Ann"),
    ]


def test_csv__has_header_false_imports_every_row_the_original_dropped():
    plan = parse_contacts_csv("Ivan,111\nAnn,222\nBob,333\n", has_header=False)
    assert [r.telegram_id for r in plan.rows] == ["111", "222", "333"]


def test_csv__telegram_column_holding_usernames_and_links():
    text = "telegram\n@ivan_petrov\nhttps://t.me/Ann_Smith\nt.me/bob_smith/\n12345\n"
    plan = parse_contacts_csv(text)
    assert [(r.telegram_id, r.username) for r in plan.rows] == [
        (None, "ivan_petrov"),
        (None, "ann_smith"),
        (None, "bob_smith"),
        ("12345", None),
    ]


def test_csv__digits_in_a_username_column_are_a_telegram_id():
    assert rows("username\n@12345\n") == [ContactRow(line=2, first_name="Contact", telegram_id="12345")]


def test_csv__spreadsheet_number_forms_of_telegram_ids():
    assert [r.telegram_id for r in rows("telegram_id\n123456789.0\n 42 \n")] == ["123456789", "42"]


def test_csv__duplicates_by_any_identifier_keep_the_first_row():
    text = (
        "telegram_id,username,email\n"
        "1,ann_smith,\n"
        "1,,\n"  # same telegram id
        ",ANN_SMITH,\n"  # same username, other case
        "2,,a@b.co\n"
        ",,A@B.CO\n"  # same email
        "3,,\n"
    )
    plan = parse_contacts_csv(text)
    assert [r.line for r in plan.rows] == [2, 5, 7]
    assert plan.duplicates == 3 and plan.invalid == 0


def test_csv__invalid_rows_are_counted_and_sampled_with_their_line():
    text = "first_name,telegram_id,email\nA,abc,\nB,,not-an-email\nC,,\n" + '"D,1\n' + "E,5,\n"
    plan = parse_contacts_csv(text)
    assert [r.first_name for r in plan.rows] == ["E"]
    assert plan.invalid == 4
    assert plan.samples == (
        "line 2: invalid telegram id 'abc'",
        "line 3: invalid email 'not-an-email'",
        "line 4: no telegram id, username or email",
        "line 5: unterminated quoted field",
    )


def test_csv__a_bad_value_beside_a_good_identifier_is_dropped_not_fatal():
    assert rows("telegram_id,email\n5,nope\n") == [ContactRow(line=2, first_name="Contact", telegram_id="5")]


def test_csv__samples_stop_at_ten_but_the_count_goes_on():
    plan = parse_contacts_csv("telegram_id\n" + "x\n" * 25)
    assert plan.invalid == 25 and len(plan.samples) == 10


def test_csv__blank_lines_and_empty_rows_are_ignored():
    plan = parse_contacts_csv("telegram_id;name\r\n\r\n;;\r\n  \r\n1;A\r\n")
    assert [r.telegram_id for r in plan.rows] == ["1"] and plan.invalid == 0


def test_csv__whitespace_in_names_is_collapsed_and_long_values_bounded():
    long = "x" * 300
    (row,) = rows(f'first_name,last_name,telegram_id,phone\n"  Ann \n Lee ",{long},1,{"1" * 60}\n')
    assert row.first_name == "Ann Lee"
    assert row.last_name == "x" * 255
    assert row.phone is None


def test_csv__short_rows_and_extra_fields():
    assert rows("telegram_id,first_name,last_name\n1\n2,B,C,extra\n") == [
        ContactRow(line=2, first_name="Contact", telegram_id="1"),
        ContactRow(line=3, first_name="B", last_name="C", telegram_id="2"),
    ]


def test_csv__quoted_header_and_fields_with_the_delimiter():
    text = '"Telegram ID";"Name"\r\n"1";"Smith; John"\r\n'
    assert rows(text) == [ContactRow(line=2, first_name="Smith; John", telegram_id="1")]


def test_csv__empty_input():
    plan = parse_contacts_csv("", has_header=True)
    assert plan.rows == () and plan.invalid == 0


# --- username lists -----------------------------------------------------------------------------------


def test_usernames__one_per_line_with_at_signs_links_and_ids():
    plan = parse_username_list("@Ivan_Petrov\n@@ann_smith\r\nhttps://t.me/Bob_Jones\n123456\n")
    assert plan.rows == (
        ContactRow(line=1, first_name="Ivan_Petrov", username="ivan_petrov"),
        ContactRow(line=2, first_name="ann_smith", username="ann_smith"),
        ContactRow(line=3, first_name="Bob_Jones", username="bob_jones"),
        ContactRow(line=4, first_name="Contact", telegram_id="123456"),
    )


def test_usernames__commas_and_semicolons_also_separate():
    plan = parse_username_list("@alpha_one, @beta_two; gamma_three\n")
    assert [r.username for r in plan.rows] == ["alpha_one", "beta_two", "gamma_three"]


def test_usernames__case_insensitive_duplicates_are_dropped():
    plan = parse_username_list("Ivan_Petrov\nivan_petrov\n@IVAN_PETROV\n42\n42\n")
    assert [r.username or r.telegram_id for r in plan.rows] == ["ivan_petrov", "42"]
    assert plan.duplicates == 3 and plan.invalid == 0


@pytest.mark.parametrize("token", ["abcd", "a" * 33, "bad-name", "ivan petrov", "@", "t.me/", "имя_юзера"])
def test_usernames__invalid_tokens(token):
    plan = parse_username_list(token)
    assert plan.rows == () and plan.invalid == 1 and plan.samples == (token[:64],)


def test_usernames__samples_are_the_first_ten_tokens_cut_to_64_chars():
    plan = parse_username_list("\n".join(["x" * 100] + [f"b{i}" for i in range(20)]))
    assert plan.invalid == 21
    assert plan.samples[0] == "x" * 64 and len(plan.samples) == 10


def test_usernames__blank_input():
    plan = parse_username_list("\ufeff\n \n")
    assert plan.rows == () and plan.invalid == 0


def test_csv__without_header_bare_usernames_are_recognised_by_their_shape():
    text = "Ivan,ivan_petrov,111\nAnn,ann1990,222\nBob,bob_b,333\n"
    plan = parse_contacts_csv(text, has_header=False)
    assert [(r.first_name, r.username, r.telegram_id) for r in plan.rows] == [
        ("Ivan", "ivan_petrov", "111"),
        ("Ann", "ann1990", "222"),
        ("Bob", "bob_b", "333"),
    ]


def test_csv__a_header_row_is_recognised_even_when_has_header_is_false():
    plan = parse_contacts_csv("first_name,telegram_id,username\nIvan,111,ivan_petrov\n", has_header=False)
    assert [(r.line, r.first_name, r.telegram_id) for r in plan.rows] == [(2, "Ivan", "111")]
    assert plan.invalid == 0


def test_csv__a_header_of_unknown_names_is_skipped_not_reported():
    plan = parse_contacts_csv("Client,Note\nAcme,12345\n", has_header=True)
    assert [(r.first_name, r.telegram_id) for r in plan.rows] == [("Acme", "12345")]
    assert plan.invalid == 0


def test_row_limit__stops_the_parse_at_the_first_row_past_it():
    from campaignsvc.domain.audience_import import TooManyRows

    def lines():
        yield "telegram_id\n"
        for i in range(10):
            yield f"{1000 + i}\n"

    content = "".join(lines())
    assert len(parse_contacts_csv(content, max_rows=10).rows) == 10
    with pytest.raises(TooManyRows) as raised:
        parse_contacts_csv(content, max_rows=9)
    assert raised.value.limit == 9
    with pytest.raises(TooManyRows):
        parse_username_list("alice_1, bob_22\ncarol_3", max_rows=2)
    assert len(parse_username_list("alice_1, bob_22", max_rows=2).rows) == 2
