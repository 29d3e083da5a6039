"""Schema-driven fuzzing of the running service: schemathesis reads ``/openapi.json`` from the real process
(the URL form: the app is trio, so it is not driven in-process) and sends generated requests, valid and
invalid, as a seeded organization with the internal secret set. Path and query ids are drawn from that
organization's real rows most of the time, so the requests reach past the 404s into the handlers.

Checks: no 5xx, every status code and content type documented, every body matching its schema, and
schema-invalid input rejected with a 4xx. The seed is fixed and the examples per operation bounded, so a
run is reproducible and takes about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.conftest import free_port, start_service, stop_service
from tests.factories import Org
from tests.integration.api_world import build_campaign, seed_crm

SECRET = "fuzz-internal-secret"
SEED = 20261125
MAX_EXAMPLES = 100
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)


def _config(ids: dict[str, list[str]], sacrificial: str) -> str:
    """schemathesis.toml: dictionaries of real ids, bound to the parameters that take them."""
    lines = []
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    bindings = {
        "path.id": "campaigns",
        "path.campaignId": "campaigns",
        "path.templateId": "templates",
        "path.stepId": "steps",
        "path.contactId": "contacts",
        "path.accountId": "accounts",
        "query.contactId": "contacts",
        "query.bdAccountId": "accounts",
        "query.sourceBdAccountId": "accounts",
    }
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{name}", probability = 0.8 }}' for key, name in bindings.items()]
    # Deleting the campaign every other operation uses would turn the rest of the run into 404s.
    lines += [
        "",
        "[[operations]]",
        'include-path = "/api/campaigns/{id}"',
        'include-method = "DELETE"',
        f'parameters = {{ "path.id" = "{sacrificial}" }}',
    ]
    return "\n".join(lines) + "\n"


async def _seed(org: Org, base_url: str, headers: dict[str, str]) -> tuple[dict[str, list[str]], str]:
    crm = await seed_crm(org)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as http:

        async def call(method: str, path: str, json_body: Any = None, *, expect: int | None = None, **_: Any):
            response = await http.request(method, path, json=json_body)
            assert expect is None or response.status_code == expect, (path, response.text)
            return response.status_code, response.json() if response.content else None

        campaign = await build_campaign(call, crm, name="Fuzzed")
        spare = await build_campaign(call, crm, name="Deleted by the fuzzer")
    ids = {
        "campaigns": [campaign.id],
        "templates": campaign.templates,
        "steps": campaign.steps,
        "contacts": [str(c) for c in crm.contacts],
        "accounts": [str(a) for a in crm.accounts],
    }
    return ids, spare.id


async def test_fuzz__no_server_errors_and_every_response_as_documented(database_url, store, org, tmp_path):
    env = {
        "DATABASE_URL": database_url,
        "INTERNAL_AUTH_SECRET": SECRET,
        "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "0",
        # Nothing listens there: sends fail as transient errors, the API is what is under test.
        "MESSAGING_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "LOG_LEVEL": "warning",
    }
    service = await start_service(env, tmp_path / "service.log")
    try:
        headers = {**org.headers(), "X-Internal-Auth": SECRET}
        ids, sacrificial = await _seed(org, service.base_url, headers)
        config = tmp_path / "schemathesis.toml"
        config.write_text(_config(ids, sacrificial))
        report = tmp_path / "report.json"
        args = [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(config),
            "run",
            f"{service.base_url}/openapi.json",
            *(arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")),
            "--checks",
            ",".join(CHECKS),
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--report",
            "json",
            "--report-json-path",
            str(report),
            "--no-color",
        ]
        result = await trio.run_process(
            args,
            capture_stdout=True,
            stderr=subprocess.STDOUT,
            check=False,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        )
        output = result.stdout.decode(errors="replace")
        assert result.returncode == 0, output[-8000:] + "\n--- service log ---\n" + service.log()[-4000:]
        assert "http.unhandled_error" not in service.log()
        summary = json.loads(report.read_text())
        assert summary["operations"]["tested"] == summary["operations"]["total"] > 40
        assert summary["test_cases"]["generated"] > 40 * MAX_EXAMPLES
        print(f"schemathesis: {summary['test_cases']['generated']} cases, {summary['running_time']:.0f} s")
    finally:
        stop_service(service)
