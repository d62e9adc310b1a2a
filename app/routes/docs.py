"""``/docs``: Swagger UI served from our own static files, so the strict CSP holds there too."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/docs")
def api_docs(request: Request) -> Response:
    return render(request, "api_docs.html")
