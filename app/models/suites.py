"""Evaluation suites: prompts with checks, put to several agents, and the results of each run.

A suite's prompts and checks are one JSON document (the shape of an exported suite file, see
``app/evals/schema.py``); a suite run keeps its own copy, so editing the suite later does not
change what an earlier run was judged by. Each prompt × agent of a run is a ``SuiteResult``: a
normal run in a task of its own, and what its checks found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.common import UTCDateTime, utcnow


class Suite(SQLModel, table=True):
    """A named list of prompts, each with its checks, in a workspace."""

    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    name: str = Field(sa_type=sa.String(120))
    description: str = Field(default="", sa_type=sa.Text)
    # [{"prompt": "...", "checks": [{"kind": "contains", "text": "..."}, ...]}, ...]
    prompts: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SuiteRun(SQLModel, table=True):
    """One run of a suite against 1–8 agents; ``number`` counts the suite's runs from 1."""

    __tablename__ = "suite_run"
    __table_args__ = (sa.UniqueConstraint("suite_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    suite_id: int = Field(foreign_key="suite.id", ondelete="CASCADE", index=True)
    number: int
    prompts: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    agent_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    judge_agent_id: int | None = Field(default=None, foreign_key="agent.id", ondelete="SET NULL")
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SuiteResult(SQLModel, table=True):
    """One prompt put to one agent in a suite run: its run, and what each check found.

    Written once per answer, when its run succeeds: the findings decided from the answer alone,
    and the sandbox check and judge run started for it. Their outcomes are read from the check
    and the judge's run themselves (``app.services.suite_results``), so nothing finishing later
    writes here and a retried check or judge run counts as it ends. ``answered_at`` is the
    finish time of the run attempt the findings belong to: a retried run is judged afresh.
    """

    __tablename__ = "suite_result"
    __table_args__ = (sa.UniqueConstraint("suite_run_id", "prompt_index", "agent_id"),)

    id: int | None = Field(default=None, primary_key=True)
    suite_run_id: int = Field(foreign_key="suite_run.id", ondelete="CASCADE", index=True)
    prompt_index: int
    agent_id: int | None = Field(default=None, foreign_key="agent.id", ondelete="SET NULL")
    task_id: int | None = Field(
        default=None, foreign_key="task.id", ondelete="SET NULL", index=True
    )
    run_id: int | None = Field(default=None, foreign_key="run.id", ondelete="SET NULL", index=True)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The checks decided from the answer alone: [{"kind", "passed", "reason"}], in suite order.
    findings: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    code_check_id: int | None = Field(
        default=None, foreign_key="code_check.id", ondelete="SET NULL", index=True
    )
    judge_task_id: int | None = Field(
        default=None, foreign_key="task.id", ondelete="SET NULL", index=True
    )
    judge_run_id: int | None = Field(
        default=None, foreign_key="run.id", ondelete="SET NULL", index=True
    )


class SuiteWrite(SQLModel):
    """A suite as a file holds it (validated against the suite schema by the service)."""

    name: str
    description: str = ""
    prompts: list[dict[str, Any]]


class SuitePublic(SQLModel):
    id: int
    workspace_id: int
    name: str
    description: str
    prompts: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


class SuiteRunCreate(SQLModel):
    agent_ids: list[int] = Field(min_length=1, max_length=8)
    judge_agent_id: int | None = None


class SuiteRunPublic(SQLModel):
    id: int
    suite_id: int
    number: int
    agent_ids: list[int]
    judge_agent_id: int | None
    created_at: datetime
