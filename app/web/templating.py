"""Templates: one per page; HTMX requests get just the named block they ask for."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import Request
from jinja2_fragments.fastapi import Jinja2Blocks
from markupsafe import Markup
from starlette.responses import Response

from app.engine.checks import has_code, has_tests
from app.models import TaskStatus
from app.paths import TEMPLATES_DIR
from app.web.rendering import render_markdown

templates = Jinja2Blocks(directory=str(TEMPLATES_DIR))
# Templates are read once per process, as the code is: checking every included template's file
# for changes (a stat per include, hundreds per board) was a good share of a page's CPU.
templates.env.auto_reload = False


def human_count(value: int | None) -> str:
    """270M, 1.5B, 8K: how people write parameter counts and context sizes."""
    if not value:
        return ""
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return str(value)


def markdown(text: str | None) -> Markup:
    """Agent or user Markdown as sanitised HTML."""
    return Markup(render_markdown(text or ""))


templates.env.filters["count"] = human_count
templates.env.filters["markdown"] = markdown
# An answer whose code can be run as a check, one whose tests can be run against code: asked of
# every answer shown, again on every view; a finished answer never changes, so once per text.
templates.env.filters["has_code"] = lru_cache(maxsize=4096)(has_code)
templates.env.filters["has_tests"] = lru_cache(maxsize=4096)(has_tests)


@lru_cache(maxsize=16)
def status_options(current: str) -> Markup:
    """A board card's move options with ``current`` selected: the same for every card of a
    status, so rendered once per status (each card's own loop was a third of a board's
    rendering)."""
    return Markup(
        templates.env.get_template("_status_options.html").render(
            statuses=list(TaskStatus), current=current
        )
    )


templates.env.globals["status_options"] = status_options


def wants_fragment(request: Request) -> bool:
    """An HTMX swap, not a boosted navigation or a history restore (those need full pages)."""
    headers = request.headers
    return (
        headers.get("hx-request") == "true"
        and headers.get("hx-boosted") != "true"
        and headers.get("hx-history-restore-request") != "true"
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
) -> Response:
    """The page, or only ``block`` of it when HTMX swaps that part in."""
    context = dict(context or {})
    context.setdefault("current_user", getattr(request.state, "user", None))
    block_name = block if block and wants_fragment(request) else None
    response = templates.TemplateResponse(
        request, template, context, status_code=status_code, block_name=block_name
    )
    response.headers["Vary"] = "HX-Request"
    return response
