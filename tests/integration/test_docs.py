"""``GET /docs``: Swagger UI over ``/openapi.json``, served by the service itself from the packaged bundle
(nothing from elsewhere, so it works offline), with a Content-Security-Policy on the page and its files
only; the Authorize dialog's schemes are the headers the API reads."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import attrs
import httpx
import swagger_ui_bundle

from campaignsvc.http import identity
from campaignsvc.http.app import create_app
from campaignsvc.http.events import SECRET_HEADER

EXTERNAL = re.compile(r"(?:https?:)?//", re.IGNORECASE)


class _References(HTMLParser):
    """Every URL the page loads or links to (src, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "img") and values.get("src"):
            self.loaded.append(values["src"] or "")
        if tag == "link" and values.get("href"):
            self.loaded.append(values["href"] or "")
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")


async def test_docs__the_page_and_its_swagger_ui_files_come_from_the_service(service):
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "http://" not in html and "https://" not in html  # nothing from elsewhere: works offline
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self';" in csp and "connect-src 'self';" in csp
        assert "unsafe" not in csp and not EXTERNAL.search(csp)

        refs = _References()
        refs.feed(html)
        assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/docs.js"} <= set(refs.loaded)
        assert "/dashboard" in refs.links and "/openapi.json" in refs.links
        kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
        for url in refs.loaded + refs.links:
            assert url.startswith("/") and not EXTERNAL.match(url), url
        for url in refs.loaded:
            asset = await http.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(kinds[url[url.rindex(".") :]]), url
            assert asset.headers["x-content-type-options"] == "nosniff"
            assert asset.headers["content-security-policy"] == csp
            # Unchanged files are revalidated, not downloaded again.
            again = await http.get(url, headers={"If-None-Match": asset.headers["etag"]})
            assert again.status_code == 304 and again.content == b"", url

        # Swagger UI is the pip-packaged bundle, byte for byte; the page starts it on the service's document.
        bundle = (await http.get("/docs/swagger-ui-bundle.js")).content
        assert bundle == (swagger_ui_bundle.swagger_ui_path / "swagger-ui-bundle.js").read_bytes()
        assert b"SwaggerUIBundle" in bundle
        starter = (await http.get("/docs/docs.js")).text
        assert 'url: "/openapi.json"' in starter and "validatorUrl: null" in starter
        assert "http://" not in starter and "https://" not in starter

        # The security headers are the pages' own: the API's answers carry no page policy.
        document = await http.get("/openapi.json")
        assert document.status_code == 200 and "content-security-policy" not in document.headers
        assert (await http.get("/health")).headers.get("content-security-policy") is None


async def test_docs__authorize_takes_the_headers_the_api_reads(client):
    document = await (await client.get("/openapi.json")).get_json()
    schemes = document["components"]["securitySchemes"]
    assert all(s["type"] == "apiKey" and s["in"] == "header" and s["description"] for s in schemes.values())
    by_header = {s["name"].lower(): name for name, s in schemes.items()}
    assert set(by_header) == {
        "x-organization-id",
        "x-user-id",
        "x-user-role",
        "x-internal-auth",
        SECRET_HEADER.lower(),
    }
    for role in identity.ROLES:
        assert role in schemes[by_header["x-user-role"]]["description"]
    tenant = {by_header[h] for h in ("x-organization-id", "x-user-id", "x-user-role", "x-internal-auth")}
    listed = document["paths"]["/api/campaigns"]["get"]["security"]
    assert [set(r) for r in listed] == [tenant]
    events = document["paths"]["/api/campaigns/events"]["post"]["security"]
    assert [set(r) for r in events] == [{by_header["x-internal-auth"], by_header[SECRET_HEADER.lower()]}]
    assert "security" not in document["paths"]["/health"]["get"]


async def test_docs__unknown_files_are_404_and_the_internal_secret_applies(services, client):
    for path in ("/docs/nope.js", "/docs/index.html", "/docs/..%2Fapp.py", "/docs/swagger-ui.js.map"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert (await response.get_json())["code"] == "NOT_FOUND"
    guarded = attrs.evolve(services, settings=attrs.evolve(services.settings, internal_auth_secret="s3cret"))
    guarded_client = create_app(guarded).test_client()
    assert (await guarded_client.get("/docs")).status_code == 401
    assert (await guarded_client.get("/docs/swagger-ui-bundle.js")).status_code == 401
    assert (await guarded_client.get("/docs", headers={"X-Internal-Auth": "s3cret"})).status_code == 200


async def test_docs__linked_from_the_dashboard(client):
    html = (await (await client.get("/dashboard")).get_data()).decode()
    assert 'href="/docs"' in html
