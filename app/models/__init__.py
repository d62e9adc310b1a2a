"""The tables of the whole domain (see DESIGN.md); importing this registers them all."""

from sqlmodel import SQLModel

# One naming convention, so constraints have the same names on SQLite and PostgreSQL
# and Alembic can compare and drop them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from app.models.accounts import ApiToken, LoginSession, SignInLink, User, UserPublic  # noqa: E402
from app.models.agents import Agent, AgentCreate, AgentPublic, AgentUpdate  # noqa: E402
from app.models.comparisons import (  # noqa: E402
    Comparison,
    ComparisonBranch,
    ComparisonCreate,
    ComparisonPublic,
    MainBranch,
    Vote,
    VoteCreate,
    VoteOutcome,
    VotePublic,
)
from app.models.endpoints import (  # noqa: E402
    Model,
    ModelEndpoint,
    ModelEndpointCreate,
    ModelEndpointPublic,
    ModelEndpointUpdate,
    ModelPublic,
    ModelUpdate,
)
from app.models.suites import (  # noqa: E402
    Suite,
    SuitePublic,
    SuiteResult,
    SuiteRun,
    SuiteRunCreate,
    SuiteRunPublic,
    SuiteWrite,
)
from app.models.work import (  # noqa: E402
    CHECK_ACTIVE,
    Check,
    CheckCreate,
    CheckPublic,
    CheckStatus,
    Message,
    MessagePublic,
    MessageRole,
    Pipeline,
    PipelineCreate,
    PipelinePublic,
    Run,
    RunPublic,
    RunStatus,
    Task,
    TaskCreate,
    TaskDetail,
    TaskPublic,
    TaskStatus,
    TaskUpdate,
)
from app.models.workspaces import (  # noqa: E402
    Event,
    MemberRemoval,
    Membership,
    Role,
    ShareLink,
    ShareLinkKind,
    Workspace,
    WorkspaceCreate,
    WorkspacePublic,
)

# Ids are never reused: live streams and links are keyed by ids, and SQLite (without
# AUTOINCREMENT) hands a deleted row's id to the next one. PostgreSQL identities never reuse.
for _table in SQLModel.metadata.tables.values():
    _table.dialect_options["sqlite"]["autoincrement"] = True

__all__ = [
    "CHECK_ACTIVE",
    "Check",
    "CheckCreate",
    "CheckPublic",
    "CheckStatus",
    "ComparisonCreate",
    "ComparisonPublic",
    "MainBranch",
    "VoteCreate",
    "VotePublic",
    "AgentCreate",
    "AgentPublic",
    "AgentUpdate",
    "MessagePublic",
    "PipelineCreate",
    "PipelinePublic",
    "RunPublic",
    "TaskCreate",
    "TaskDetail",
    "TaskPublic",
    "TaskUpdate",
    "Agent",
    "ApiToken",
    "Comparison",
    "ComparisonBranch",
    "Event",
    "LoginSession",
    "MemberRemoval",
    "Membership",
    "Message",
    "MessageRole",
    "Pipeline",
    "Model",
    "ModelEndpoint",
    "ModelEndpointCreate",
    "ModelEndpointPublic",
    "ModelEndpointUpdate",
    "ModelPublic",
    "ModelUpdate",
    "Role",
    "Run",
    "RunStatus",
    "ShareLink",
    "ShareLinkKind",
    "Suite",
    "SuitePublic",
    "SuiteResult",
    "SuiteRun",
    "SuiteRunCreate",
    "SuiteRunPublic",
    "SuiteWrite",
    "SignInLink",
    "Task",
    "TaskStatus",
    "User",
    "UserPublic",
    "Vote",
    "VoteOutcome",
    "Workspace",
    "WorkspaceCreate",
    "WorkspacePublic",
]
