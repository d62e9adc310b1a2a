"""The JSON API under /api/v1: it mirrors what the pages do, for scripts and other tools."""

from fastapi import APIRouter

from app.routes.api import endpoints, users, workspaces

router = APIRouter(prefix="/api/v1")
router.include_router(endpoints.router)
router.include_router(users.router)
router.include_router(workspaces.router)
