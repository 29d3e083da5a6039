"""The examples of ``/openapi.json``: every operation has a recorded request and success response, every
example matches the schema it illustrates, and the document carries them.

They are real exchanges, recorded by the conformance run (tests/integration/test_openapi_conformance.py,
``CAMPAIGNSVC_RECORD_EXAMPLES=1``) into ``campaignsvc/http/examples.json``; when an endpoint is added or
its answers change, these tests fail until they are recorded again.
"""

from __future__ import annotations

from typing import Any

import pytest

import campaignsvc.http.app  # noqa: F401  (registers every blueprint, hence every operation)
from campaignsvc.http.api import OPERATIONS
from campaignsvc.http.openapi import EXAMPLE_NAME, build_document, load_examples, operation_key
from tests.openapi_schema import SchemaCheck

RECORD = "record them with CAMPAIGNSVC_RECORD_EXAMPLES=1 .venv/bin/pytest tests/integration/test_openapi_conformance.py"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def _operation(document: dict[str, Any], key: str) -> dict[str, Any]:
    method, path = key.split(" ", 1)
    return document["paths"][path][method.lower()]


def test_every_operation_has_a_summary_and_its_error_codes(document):
    for op in OPERATIONS:
        operation = _operation(document, operation_key(op))
        assert operation["summary"].strip(), operation_key(op)
        errors = {int(status) for status in operation["responses"]} - set(range(200, 300))
        assert errors == set(op.errors), operation_key(op)
        if op.auth != "public":
            assert {401, 503} <= errors, operation_key(op)
        for status in errors:
            assert operation["responses"][str(status)]["description"], (operation_key(op), status)


def test_every_operation_has_a_recorded_request_and_success_response(document):
    examples = load_examples()
    missing = [operation_key(op) for op in OPERATIONS if operation_key(op) not in examples]
    assert not missing, f"operations without an example: {missing}; {RECORD}"
    unknown = sorted(set(examples) - {operation_key(op) for op in OPERATIONS})
    assert not unknown, f"examples of operations the service no longer has: {unknown}; {RECORD}"
    for op in OPERATIONS:
        key = operation_key(op)
        example, operation = examples[key], _operation(document, key)
        success = str(op.status)
        assert success in example["responses"], f"{key}: no {success} example; {RECORD}"
        # The document shows them: the success response's body, the path parameters, the request body.
        for content_type, media in operation["responses"][success].get("content", {}).items():
            if content_type in example["responses"][success]:
                assert media["examples"][EXAMPLE_NAME]["value"] == example["responses"][success][content_type]
        assert op.status == 204 or any(
            "examples" in media for media in operation["responses"][success]["content"].values()
        ), key
        for param in operation["parameters"]:
            if param["in"] == "path" or param["required"]:
                assert "example" in param, f"{key}: no example of {param['name']}; {RECORD}"
        body = operation.get("requestBody")
        if body is not None and body["required"]:
            assert "examples" in body["content"]["application/json"], f"{key}: no request body example"


def test_every_example_matches_its_schema(document):
    check = SchemaCheck(document)
    problems = []
    for key, example in load_examples().items():
        operation = _operation(document, key)
        params = {p["name"]: p for p in operation["parameters"]}
        for name, value in example["request"]["parameters"].items():
            if name not in params:
                problems.append(f"{key}: parameter {name} is not documented")
                continue
            problems += [f"{key} ?{name}: {e}" for e in check.errors(params[name]["schema"], value)]
        if "body" in example["request"]:
            if "requestBody" not in operation:
                problems.append(f"{key}: takes no request body")
            else:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                problems += [f"{key} body: {e}" for e in check.errors(schema, example["request"]["body"])]
        for status, by_type in example["responses"].items():
            response = operation["responses"].get(status)
            if response is None:
                problems.append(f"{key} → {status}: status not documented")
                continue
            for content_type, body in by_type.items():
                media = response.get("content", {}).get(content_type)
                if media is None:
                    problems.append(f"{key} → {status}: {content_type} not documented")
                    continue
                problems += [
                    f"{key} → {status} {content_type}: {e}" for e in check.errors(media["schema"], body)
                ]
    assert not problems, (
        "examples that no longer match the document:\n" + "\n".join(problems[:30]) + f"\n{RECORD}"
    )
