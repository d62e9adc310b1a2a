"""The JSON API under /api/v1: it mirrors what the pages do, for scripts and other tools.

Its live streams are a router of their own (``live_router``), which the app includes before
every other: a request's route is found by trying the routes in order, each at a cost (FastAPI
0.165: about 7 µs, so a path behind all of them took over a millisecond), and a hundred viewers
open a run's stream at the same moment."""

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
live_router = APIRouter(prefix="/api/v1")
live_router.include_router(streams.router)
router.include_router(agents.router)
router.include_router(checks.router)
router.include_router(comparisons.router)
router.include_router(endpoints.router)
router.include_router(leaderboard.router)
router.include_router(pipelines.router)
router.include_router(runs.router)
router.include_router(sharing.router)
router.include_router(suites.router)
router.include_router(tasks.router)
router.include_router(tokens.router)
router.include_router(users.router)
router.include_router(workspaces.router)
