"""Factories for test data, and a signed-in client."""

from __future__ import annotations

import itertools
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Membership, Role, User, Workspace
from app.services.accounts import create_user, start_session
from app.services.workspaces import create_workspace
from app.web.deps import SESSION_COOKIE

PASSWORD = "correct horse battery"
_numbers = itertools.count(1)


def make_user(session: Session, *, admin: bool = False, email: str | None = None) -> User:
    user = create_user(
        session=session,
        email=email or f"user{next(_numbers)}@example.com",
        password=PASSWORD,
        is_admin=admin,
    )
    session.commit()
    return user


def make_workspace(session: Session, *, owner: User, name: str = "Team space") -> Workspace:
    workspace = create_workspace(session=session, name=name, owner=owner)
    session.commit()
    return workspace


def add_member(session: Session, *, workspace: Workspace, user: User, role: Role) -> None:
    session.add(Membership(workspace_id=workspace.id, user_id=user.id, role=role))  # type: ignore[arg-type]
    session.commit()


def sign_in(client: TestClient, session: Session, user: User) -> TestClient:
    """Give ``client`` a valid session cookie for ``user``."""
    token = start_session(session=session, user=user, lifetime=timedelta(days=1))
    session.commit()
    client.cookies.set(SESSION_COOKIE, token)
    return client


def make_model(session: Session, *, base_url: str, context_length: int = 4096, **endpoint: object):
    """An endpoint at ``base_url`` serving one model (no discovery request needed)."""
    from app.models import Model, ModelEndpoint

    server = ModelEndpoint(name=f"server-{next(_numbers)}", base_url=base_url, **endpoint)
    session.add(server)
    session.flush()
    model = Model(endpoint_id=server.id, name="scripted", context_length=context_length)
    session.add(model)
    session.commit()
    return model


def make_agent(session: Session, *, workspace: Workspace, model, name: str, prompt: str = ""):
    from app.models import Agent

    agent = Agent(
        workspace_id=workspace.id, name=name, role_prompt=prompt or f"You are {name}.",
        model_id=model.id, max_tokens=64, temperature=0.0,
    )  # fmt: skip
    session.add(agent)
    session.commit()
    return agent
