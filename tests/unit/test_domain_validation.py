from __future__ import annotations

from uuid import UUID

import pytest

from campaignsvc.domain.schedule import ScheduleError
from campaignsvc.domain.templates import TemplateError
from campaignsvc.domain.validation import DomainInputError, FieldError, is_int, join, parse_uuid, parse_zone
from campaignsvc.errors import CampaignsvcError

U = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_parse_uuid__canonical_text_only():
    assert parse_uuid(U) == UUID(U)
    assert parse_uuid(U.upper()) == UUID(U)
    assert parse_uuid(UUID(U)) == UUID(U)
    for bad in ["{" + U + "}", "urn:uuid:" + U, U.replace("-", ""), U + " ", "", None, 5, "nope"]:
        assert parse_uuid(bad) is None


def test_parse_zone__iana_names_any_case_not_host_files():
    assert parse_zone("Europe/Berlin").key == "Europe/Berlin"
    assert parse_zone(" america/new_york ").key == "America/New_York"
    assert parse_zone("UTC").key == "UTC"
    for bad in ["localtime", "Factory", "posixrules", "Mars/Base", "", "../../etc/passwd", None, 1]:
        assert parse_zone(bad) is None


@pytest.mark.parametrize(
    ("value", "expected"), [(1, True), (0, True), (True, False), (1.0, False), ("1", False)]
)
def test_is_int__json_integers_only(value, expected):
    assert is_int(value) is expected


def test_join__dotted_paths():
    assert join("conditions", "contact") == "conditions.contact"
    assert join("conditions.contact", 0) == "conditions.contact.0"
    assert join("", "content") == "content"


def test_field_error__json_shape():
    assert FieldError("a.b", "bad").as_json() == {"path": "a.b", "message": "bad"}


def test_domain_errors__share_one_root_with_field_errors():
    for exc in (ScheduleError("schedule.timezone", "bad"), TemplateError("bad", 4)):
        assert isinstance(exc, DomainInputError)
        assert isinstance(exc, CampaignsvcError)
        assert len(exc.field_errors()) == 1


def test_domain_input_error__without_a_field_stands_for_the_whole_input():
    assert DomainInputError("not a schedule").field_errors() == [FieldError("", "not a schedule")]
