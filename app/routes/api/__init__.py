"""The JSON API under /api/v1: it mirrors what the pages do, for scripts and other tools."""

from fastapi import APIRouter

from app.routes.api import (
    agents,
    checks,
    comparisons,
    endpoints,
    leaderboard,
    pipelines,
    runs,
    sharing,
    streams,
    suites,
    tasks,
    tokens,
    users,
    workspaces,
)

router = APIRouter(prefix="/api/v1")
router.include_router(agents.router)
router.include_router(checks.router)
router.include_router(comparisons.router)
router.include_router(endpoints.router)
router.include_router(leaderboard.router)
router.include_router(pipelines.router)
router.include_router(runs.router)
router.include_router(sharing.router)
router.include_router(streams.router)
router.include_router(suites.router)
router.include_router(tasks.router)
router.include_router(tokens.router)
router.include_router(users.router)
router.include_router(workspaces.router)
