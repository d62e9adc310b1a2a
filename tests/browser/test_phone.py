"""Every page on a 390-pixel phone: nothing wider than the screen, the account page reachable."""

from __future__ import annotations

from app.services.comparisons import create_comparison
from app.services.tasks import create_task
from tests.factories import make_agent, make_model, make_user, make_workspace


def test_no_page_scrolls_sideways_on_a_phone(open_page, session, model_server):
    user = make_user(session, admin=True)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    agents = [make_agent(session, workspace=workspace, model=model, name=name)
              for name in ("Coder", "Tester")]  # fmt: skip
    task, started = create_task(session=session, workspace=workspace, author=user,
                                title="A task", agent_ids=[a.id for a in agents])  # fmt: skip
    answers = [run.output_message_id for run in started.runs]
    comparison = create_comparison(session=session, task=task, author=user, message_ids=answers)
    session.commit()
    page = open_page(user)
    page.set_viewport_size({"width": 390, "height": 844})
    wide = {}
    base = f"/w/{workspace.slug}"
    pages = ["/", base, f"{base}/agents", f"{base}/pipelines", f"{base}/members"]
    pages += [f"/t/{task.id}", f"/c/{comparison.id}", "/account", "/admin/endpoints"]
    for path in pages:
        page.goto(path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > 390:
            wide[path] = width
    assert wide == {}
    page.goto("/")
    page.click("#current-user")
    page.wait_for_url("**/account")
