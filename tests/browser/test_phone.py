"""Every page on a 390-pixel phone: nothing wider than the screen, the account page reachable."""

from __future__ import annotations

from playwright.sync_api import expect

from app.engine.pipelines import create_pipeline
from app.models import Role
from app.services.comparisons import create_comparison
from app.services.tasks import create_task
from tests.factories import add_member, make_agent, make_model, make_user, make_workspace


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
    create_pipeline(session=session, workspace_id=workspace.id, author=user, name="Write, test",
                    steps=[{"agent_id": agents[0].id}, {"agent_id": agents[1].id,
                                                         "instruction": "Test this."}])  # fmt: skip
    session.commit()
    page = open_page(user)
    page.set_viewport_size({"width": 390, "height": 844})
    wide = {}
    base = f"/w/{workspace.slug}"
    pages = ["/", base, f"{base}/agents", f"{base}/pipelines", f"{base}/members"]
    pages += [f"/t/{task.id}", f"/c/{comparison.id}", "/account", "/admin/endpoints"]
    for path in pages:
        page.goto(path)
        # Every form that opens on demand, open (the compact actions, agents' and pipelines'
        # edit forms, the board's new task), and whatever they load, loaded.
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        expect(page.locator("[data-load]")).to_have_count(0)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > 390:
            wide[path] = width
    assert wide == {}
    page.goto("/")
    page.click("#current-user")
    page.wait_for_url("**/account")


# The middle of an element is really it: not cut off by a parent that scrolls or clips, nor
# covered by anything.
WHOLLY_SHOWN = """(element) => {
  const box = element.getBoundingClientRect();
  if (box.left < 0 || box.right > window.innerWidth) return false;
  for (let parent = element.parentElement; parent; parent = parent.parentElement) {
    const frame = parent.getBoundingClientRect();
    const clips = getComputedStyle(parent).overflowX !== "visible";
    if (clips && (box.left < frame.left - 1 || box.right > frame.right + 1)) return false;
  }
  const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return hit === element || element.contains(hit);
}"""


def test_remove_is_not_cut_off_on_the_members_page_of_a_phone(open_page, session):
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner)
    for n in range(2):
        person = make_user(session, email=f"firstnamelastname{n}@example.com")
        add_member(session, workspace=workspace, user=person, role=Role.editor)
    page = open_page(owner)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/w/{workspace.slug}/members")
    removes = page.locator("#member-list button:has-text('Remove')")
    assert removes.count() == 2
    for index in range(2):
        button = removes.nth(index)
        button.scroll_into_view_if_needed()
        assert button.evaluate(WHOLLY_SHOWN), button.inner_text()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
