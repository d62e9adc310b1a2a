"""Switchboard: a self-hosted dashboard for delegating work to AI agents on small local models.

  config, db, security, redis_conn, paths   settings, SQL, hashing, Redis, folders
  logs        log lines as text or JSON; the run a worker's lines are about
  models/     SQLModel tables and their create / update / public schemas
  engine/     the run engine and its delivery contract (runs, pipelines, checks, dispatch, live)
  checks/     the bubblewrap sandbox that runs agents' code
  evals/      evaluation suites' file schema and check kinds (no database)
  services/   plain functions for everything else; no FastAPI, no Celery
  llm/        the OpenAI-compatible client
  routes/     thin page and API handlers; web/ the plumbing they share
  runtime/    the one-command local stack (`switchboard up`); never on a request path

The import contracts in pyproject.toml (checked by `lint-imports` in `make test`) keep the
arrows pointing one way: ``workers`` imports ``app``, never the reverse.
"""
