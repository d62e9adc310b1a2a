"""Accounts: first-run page, password sign-in, one-time links, sessions, API tokens."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from bs4 import BeautifulSoup

from app.config import get_settings
from app.models import ApiToken, LoginSession, SignInLink, User
from app.models.common import utcnow
from app.security import hash_token, new_token
from app.services.accounts import create_sign_in_link, ensure_local_admin
from app.services.setup_token import ensure_setup_token
from app.web.deps import SESSION_COOKIE
from tests.factories import PASSWORD, make_user, sign_in


def count(session, model) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def test_a_fresh_install_sends_people_to_the_first_run_page(client):
    response = client.get("/", follow_redirects=True)
    assert response.url.path == "/setup"
    assert "No account exists yet" in response.text


def test_first_run_needs_the_logged_token_and_creates_a_signed_in_admin(client, session):
    token = ensure_setup_token(get_settings())
    form = {"email": "Ada@Example.com", "password": "long enough pw", "display_name": "Ada"}
    refused = client.post("/setup", data={**form, "token": "guess"})
    assert refused.status_code == 403 and count(session, User) == 0
    assert "setup link printed in the server log" in refused.text

    short = client.post("/setup", data={**form, "token": token, "password": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.text
    assert count(session, User) == 0

    created = client.post("/setup", data={**form, "token": token}, follow_redirects=False)
    assert created.status_code == 303
    admin = session.exec(sa.select(User)).scalar_one()
    assert admin.email == "ada@example.com" and admin.is_admin
    assert client.get("/api/v1/me").json()["email"] == "ada@example.com"
    # The page is gone once an account exists, and the token with it.
    assert client.get("/setup", follow_redirects=False).headers["location"] == "/signin"
    assert not (get_settings().data_path / "setup_token").exists()


def test_sign_in_with_password_sets_a_safe_cookie(client, session):
    make_user(session, email="bob@example.com")
    response = client.post(
        "/signin",
        data={"email": "BOB@example.com", "password": PASSWORD, "next": "/w/x"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/w/x"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert count(session, LoginSession) == 1


def test_wrong_password_is_refused_and_changes_nothing(client, session):
    make_user(session, email="bob@example.com")
    response = client.post("/signin", data={"email": "bob@example.com", "password": "nope"})
    assert response.status_code == 400
    assert BeautifulSoup(response.text, "html.parser").find(id="signin-error").text == (
        "Wrong email or password."
    )
    assert SESSION_COOKIE not in response.cookies and count(session, LoginSession) == 0


def test_next_never_leaves_the_site(client, session):
    make_user(session, email="bob@example.com")
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        response = client.post(
            "/signin",
            data={"email": "bob@example.com", "password": PASSWORD, "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/"


def test_sign_out_ends_the_server_side_session(client, session):
    sign_in(client, session, make_user(session))
    assert client.get("/api/v1/me").status_code == 200
    client.post("/signout")
    assert count(session, LoginSession) == 0
    assert client.get("/api/v1/me").status_code == 401


def test_expired_sessions_are_refused(client, session):
    user = make_user(session)
    sign_in(client, session, user)
    session.execute(sa.update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert client.get("/api/v1/me").status_code == 401


def test_one_time_link_signs_in_once(client, session):
    admin = ensure_local_admin(session=session)
    token = create_sign_in_link(session=session, user=admin)
    session.commit()
    first = client.get(f"/signin/link/{token}", follow_redirects=False)
    assert first.status_code == 303 and SESSION_COOKIE in first.cookies
    assert client.get("/api/v1/me").json() == {
        "id": admin.id,
        "email": "admin@localhost",
        "display_name": "Admin",
        "is_admin": True,
    }
    client.cookies.clear()
    again = client.get(f"/signin/link/{token}")
    assert again.status_code == 400 and "used already or has expired" in again.text


def test_expired_or_unknown_links_do_not_sign_in(client, session):
    admin = ensure_local_admin(session=session)
    token = create_sign_in_link(session=session, user=admin)
    session.execute(sa.update(SignInLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert client.get(f"/signin/link/{token}").status_code == 400
    assert client.get(f"/signin/link/{new_token()}").status_code == 400
    assert count(session, LoginSession) == 0


def test_local_admin_is_created_once(session):
    first = ensure_local_admin(session=session)
    again = ensure_local_admin(session=session)
    assert first.id == again.id and first.password_hash is None


def test_pages_redirect_to_sign_in_and_the_api_answers_401(client):
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 303
    api = client.get("/api/v1/workspaces")
    assert api.status_code == 401 and "Bearer" in api.json()["detail"]


def test_api_tokens_authenticate_until_revoked(client, session):
    user = make_user(session)
    token = new_token()
    api_token = ApiToken(user_id=user.id, name="script", token_hash=hash_token(token))
    session.add(api_token)
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).json()["id"] == user.id
    session.refresh(api_token)
    assert api_token.last_used_at is not None
    api_token.revoked_at = utcnow()
    session.add(api_token)
    session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"}).status_code == 401
