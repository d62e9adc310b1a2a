"""Every route needs an account, every response carries the CSP, cross-site posts are refused,
and errors are clear pages or JSON — never a traceback."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.web.app import create_app
from app.web.middleware import CONTENT_SECURITY_POLICY
from tests.factories import make_user, sign_in

# The only routes a stranger may reach: health, sign-in, first run, API docs, and the pages a
# link token opens (an invite, a read-only share); the token is the credential there.
PUBLIC_ROUTES = {
    ("GET", "/join/{token}"),
    ("POST", "/join/{token}/signup"),
    ("GET", "/s/{token}"),
    ("GET", "/s/{token}/live"),
    ("GET", "/healthz"),
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("GET", "/signin/link/{token}"),
    ("POST", "/signout"),
    ("GET", "/setup"),
    ("POST", "/setup"),
    ("GET", "/docs"),
}


def walk(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every API route, descending into included routers.

    FastAPI 0.16x keeps included routers as lazy ``_IncludedRouter`` entries, so
    ``app.routes`` alone no longer lists the routes inside them.
    """
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.extend((method, prefix + route.path) for method in sorted(route.methods))
        elif hasattr(route, "original_router"):
            found.extend(walk(route.original_router.routes, prefix + route.include_context.prefix))
    return found


def all_routes() -> list[tuple[str, str]]:
    routes = walk(create_app().routes)
    assert len(routes) > len(PUBLIC_ROUTES), "the route walk found too few routes"
    return routes


@pytest.mark.parametrize(
    ("method", "path"), [route for route in all_routes() if route not in PUBLIC_ROUTES]
)
def test_every_route_but_the_public_ones_needs_an_account(client, session, method, path):
    make_user(session)  # an install with an account, so nothing redirects to the first-run page
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    response = client.request(method, concrete, follow_redirects=False)
    if path.startswith("/api/"):
        assert response.status_code == 401, response.text
    else:
        assert response.status_code == 303
        assert response.headers["location"].startswith("/signin?next=")


def test_public_routes_exist():
    assert set(all_routes()) >= PUBLIC_ROUTES


@pytest.mark.parametrize("path", ["/signin", "/healthz", "/docs", "/no-such-page", "/api/v1/nope"])
def test_every_response_carries_the_security_headers(client, session, path):
    make_user(session)
    response = client.get(path)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_pages_have_no_inline_scripts_or_handlers(client, session):
    sign_in(client, session, make_user(session))
    for path in ("/", "/docs"):
        page = BeautifulSoup(client.get(path).text, "html.parser")
        for script in page.find_all("script"):
            assert script.get("src"), f"inline script on {path}"
        for element in page.find_all(True):
            assert not [name for name in element.attrs if name.startswith("on")], element


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
    ],
)
def test_cross_site_form_posts_are_refused(client, session, headers):
    sign_in(client, session, make_user(session))
    page = client.post("/workspaces", data={"name": "x"}, headers=headers)
    assert page.status_code == 403
    api = client.post("/api/v1/workspaces", json={"name": "x"}, headers=headers)
    assert api.status_code == 403 and "Cross-site" in api.json()["detail"]
    assert client.get("/api/v1/workspaces").json() == []


def test_same_origin_posts_pass(client, session):
    sign_in(client, session, make_user(session))
    headers = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    response = client.post("/api/v1/workspaces", json={"name": "ok"}, headers=headers)
    assert response.status_code == 201


def test_unknown_pages_get_a_friendly_404(client, session):
    sign_in(client, session, make_user(session))
    response = client.get("/definitely/not/here")
    assert response.status_code == 404
    page = BeautifulSoup(response.text, "html.parser")
    assert page.find(id="error-message").text == "Not found."
    assert "Traceback" not in response.text


def test_htmx_requests_get_fragments_and_full_pages_otherwise(client, session):
    sign_in(client, session, make_user(session))
    response = client.post("/workspaces", data={"name": ""}, headers={"HX-Request": "true"})
    assert response.headers["vary"] == "HX-Request"
    assert not BeautifulSoup(response.text, "html.parser").find("html")
    boosted = client.post(
        "/workspaces", data={"name": ""}, headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    assert BeautifulSoup(boosted.text, "html.parser").find("html") is not None


def test_unexpected_errors_become_a_plain_500_page(session):
    from fastapi.testclient import TestClient

    app = create_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/boom")
    assert response.status_code == 500
    assert "secret internals" not in response.text and "Traceback" not in response.text
