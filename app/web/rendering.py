"""Agent output is untrusted: Markdown rendered with markdown-it-py, code highlighted with
Pygments, and the HTML sanitised with nh3 (only http/https/mailto links, no raw HTML)."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span",
    "div",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}, "div": {"class"},
                      "code": {"class"}, "th": {"align"}, "td": {"align"}}  # fmt: skip
_formatter = HtmlFormatter(nowrap=True)


def _highlight(code: str, language: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language.strip()) if language.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes and wraps it itself
    return str(highlight(code, lexer, _formatter))


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # "js-default": no raw HTML in the source, links validated; tables and strikethrough on.
    return MarkdownIt("js-default", {"highlight": _highlight}).enable(["table", "strikethrough"])


# Finished messages never change and are shown again and again (every view of a branch, every
# viewer): rendering them once per process is most of a long task page's cost.
@lru_cache(maxsize=4096)
def render_markdown(text: str) -> str:
    """Safe HTML for an agent's Markdown answer."""
    html = _markdown().render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
