"""Post/redirect/get on the account and admin pages: a reload repeats nothing and loses nothing."""

from __future__ import annotations

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlmodel import select

from app.models import ApiToken, ModelEndpoint
from app.web.app import create_app
from tests.factories import PASSWORD, make_user, sign_in


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def test_a_new_api_token_is_shown_again_on_reload_only_to_the_browser_that_made_it(client, session):
    user = make_user(session)
    sign_in(client, session, user)
    made = client.post("/account/tokens", data={"name": "nightly"}, follow_redirects=False)
    assert made.status_code == 303
    page_url = made.headers["location"]
    first = soup(client.get(page_url)).find(id="new-token-value")["value"]
    again = soup(client.get(page_url)).find(id="new-token-value")["value"]  # a reload
    assert first == again and len(first) == 43
    assert len(session.exec(select(ApiToken)).all()) == 1  # the reload made nothing
    with TestClient(create_app(), base_url="http://testserver") as elsewhere:
        sign_in(elsewhere, session, user)
        other = soup(elsewhere.get(page_url))
        assert other.find(id="new-token-value") is None
        assert "no longer shown" in other.find(id="page-notice").text
    # Revoked: not shown any more, even here.
    token_id = session.exec(select(ApiToken.id)).one()
    client.post(f"/account/tokens/{token_id}/revoke")
    assert soup(client.get(page_url)).find(id="new-token-value") is None


def test_a_password_change_redirects_to_a_page_that_says_so(client, session):
    user = make_user(session)
    sign_in(client, session, user)
    change = {"current_password": PASSWORD, "new_password": "a brand new password"}
    changed = client.post("/account/password", data=change, follow_redirects=False)
    assert changed.status_code == 303
    notice = soup(client.get(changed.headers["location"])).find(id="page-notice").text
    assert notice.startswith("Password changed")
    wrong = client.post("/account/password", data=change)  # the old password no longer works
    assert wrong.status_code == 400


def test_admin_endpoint_changes_redirect_to_the_list(client, session):
    sign_in(client, session, make_user(session, admin=True))
    form = {"name": "Local", "base_url": "http://127.0.0.1:9/v1"}
    added = client.post("/admin/endpoints", data=form, follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == "/admin/endpoints"
    endpoint = session.exec(select(ModelEndpoint)).one()
    changed = client.post(f"/admin/endpoints/{endpoint.id}", data={"max_concurrency": 3},
                          follow_redirects=False)  # fmt: skip
    assert changed.status_code == 303
    page = soup(client.get("/admin/endpoints"))
    assert "Local" in page.text
    refused = client.post("/admin/endpoints", data={"name": "", "base_url": "nope"})
    assert refused.status_code in (400, 422)
    assert len(session.exec(select(ModelEndpoint)).all()) == 1
