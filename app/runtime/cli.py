"""The ``switchboard`` command: start everything, or one part, and manage accounts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from sqlmodel import select

from app.config import Settings, SettingsError, get_settings
from app.runtime import console

if TYPE_CHECKING:
    from app.runtime.model_join import ModelJoin
    from app.runtime.supervisor import Supervisor

cli = typer.Typer(
    help="Switchboard: delegate work to AI agents on small local models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> typer.Exit:
    """Print one clear line and leave with status 1."""
    typer.echo(f"switchboard: error: {message}", err=True)
    return typer.Exit(1)


def load() -> Settings:
    try:
        settings = get_settings()
    except SettingsError as exc:
        raise fail(str(exc)) from None
    console.configure_logging(settings.log_level, settings.log_format)
    return settings


def child_env(settings: Settings) -> dict[str, str]:
    """What every child process needs to agree with this one."""
    return {
        "SWITCHBOARD_DATA_DIR": str(settings.data_path),
        "SWITCHBOARD_DATABASE_URL": settings.effective_database_url,
        "SWITCHBOARD_REDIS_URL": settings.effective_redis_url,
        "SWITCHBOARD_SECRET_KEY": settings.secret_key_value(),
        "PYTHONUNBUFFERED": "1",
        "PYTHONWARNINGS": console.QUIET_WARNINGS,
    }


def public_base_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def proxy_argv(settings: Settings) -> list[str]:
    """uvicorn's forwarded-header options: believed only from the configured proxies (uvicorn
    would otherwise believe any process on 127.0.0.1, and the sign-in limit counts by address)."""
    proxies = ",".join(p.strip() for p in settings.trusted_proxies.split(",") if p.strip())
    if not proxies:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", proxies]


def web_argv(settings: Settings) -> list[str]:
    log_config = settings.data_path / "uvicorn-logging.json"
    log_config.parent.mkdir(parents=True, exist_ok=True)
    log_config.write_text(
        json.dumps(console.uvicorn_log_config(settings.log_level, settings.log_format))
    )
    return [
        sys.executable, "-m", "uvicorn", "app.web.app:create_app", "--factory",
        "--host", settings.host, "--port", str(settings.port),
        "--workers", str(settings.effective_web_workers), "--log-level", settings.log_level,
        *proxy_argv(settings), "--log-config", str(log_config),
    ]  # fmt: skip


def lowered(settings: Settings, argv: list[str]) -> list[str]:
    """``argv`` run at SWITCHBOARD_PARTS_NICENESS below the model (``nice``; as it is where
    there is no ``nice``)."""
    nice = shutil.which("nice")
    if not settings.parts_niceness or nice is None:
        return argv
    return [nice, "-n", str(settings.parts_niceness), *argv]


def web_env(settings: Settings) -> dict[str, str]:
    """With several web workers, each request's latency lands in one worker's histogram: they
    are summed through prometheus-client's multiprocess folder (emptied here, before the
    workers start), unless PROMETHEUS_MULTIPROC_DIR names one already."""
    if settings.effective_web_workers < 2 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return {}
    folder = settings.data_path / "web-metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(folder)}


def worker_argv(settings: Settings) -> list[str]:
    """The run worker: by default one process, a thread per run (a run waits on its model
    server, so a process per run would only cost memory)."""
    return [
        # --quiet: no banner; the worker's log lines follow the stack's format.
        sys.executable, "-m", "celery", "--app", "workers.celery_app", "--quiet", "worker",
        "--loglevel", settings.log_level.upper(), "--pool", settings.worker_pool,
        "--concurrency", str(settings.worker_concurrency), "--hostname", "switchboard@%h",
    ]  # fmt: skip


def beat_argv(settings: Settings) -> list[str]:
    """Celery beat, the one scheduler (the sweeper every 15 s): start exactly one, never
    inside a worker, where ``--scale worker=3`` would make three share one schedule file."""
    return [
        sys.executable, "-m", "celery", "--app", "workers.celery_app", "--quiet", "beat",
        "--loglevel", settings.log_level.upper(),
        "--schedule", str(settings.data_path / "celerybeat-schedule"),
    ]  # fmt: skip


def checker_argv(settings: Settings) -> list[str]:
    """A Celery worker for the checks queue only, with its own concurrency (the one beat
    sends the checks sweep to this queue), in processes: checks are CPU work, and a check's
    time limit needs a pool that can stop it."""
    return [
        sys.executable, "-m", "celery", "--app", "workers.celery_app", "--quiet", "worker",
        "--loglevel", settings.log_level.upper(), "--pool", "prefork",
        "--concurrency", str(settings.check_concurrency),
        "--optimization", "fair", "--hostname", "checker@%h", "--queues", "checks",
    ]  # fmt: skip


def prepare_checks(settings: Settings) -> None:
    """Make the sandbox's runtime in the data folder, and say when checks cannot run here."""
    from app.checks.sandbox import prepare_runtime, sandbox_problem

    prepare_runtime(settings.data_path / "check-runtime")
    problem = sandbox_problem(settings.bwrap)
    if problem:
        typer.echo(f"switchboard: checks will end unavailable: {problem}", err=True)


def migrate_database(settings: Settings) -> None:
    from app.runtime.migrate import upgrade_to_head
    from app.runtime.preflight import PreflightError, check_database

    try:
        check_database(settings.effective_database_url)
    except PreflightError as exc:
        raise fail(str(exc)) from None
    upgrade_to_head(settings.effective_database_url)


def register_embedded_model(settings: Settings) -> int:
    """Register the embedded model's endpoint, and its model on a first start, before its
    server is up: agents can be given it at once, and its runs wait in their queue until it
    joins. The endpoint's id."""
    from app.db import session_scope
    from app.models import Model
    from app.runtime import embedded_model
    from app.services.endpoints import models_of, register_endpoint

    with session_scope() as session:
        endpoint = register_endpoint(
            session=session,
            name=embedded_model.EMBEDDED_ENDPOINT_NAME,
            base_url=f"http://127.0.0.1:{settings.embedded_model_port}/v1",
            api_key=embedded_model.api_key(settings.data_path),
            max_concurrency=settings.embedded_model_parallel,
            is_embedded=True,
        )
        assert endpoint.id is not None
        if not models_of(session=session, endpoint=endpoint):
            # As discovery will find it once the server answers (the same row then).
            session.add(
                Model(
                    endpoint_id=endpoint.id,
                    name=embedded_model.served_model_name(settings.data_path),
                    parameter_count=embedded_model.GEMMA_PARAMETER_COUNT,
                    context_length=settings.embedded_model_context,
                    detected_prompt_format="transcript",
                )
            )
        return endpoint.id


def start_redis(settings: Settings, supervisor: Supervisor) -> None:
    """The embedded Redis, its warnings on the console; started again should it exit."""
    from app.runtime import embedded_redis

    def start() -> subprocess.Popen[bytes]:
        return embedded_redis.start(settings.data_path, console_part="redis")

    supervisor.adopt("redis", start(), start=start, stop_late=True)


@cli.command()
def up() -> None:
    """Start everything on this machine: embedded Redis, migrations, worker, beat, web; the
    embedded model joins in the background (installed first when missing)."""
    from app.db import session_scope
    from app.redis_conn import connect
    from app.runtime import embedded_redis
    from app.runtime.model_join import ModelJoin
    from app.runtime.preflight import PreflightError, check_port_free, check_redis
    from app.runtime.supervisor import Supervisor
    from app.services.accounts import create_sign_in_link, ensure_local_admin
    from app.services.discovery import find_local_servers

    settings = load()
    supervisor = Supervisor()
    supervisor.handle_signals()  # from here on Ctrl-C stops what has started, and only that
    join = None
    try:
        check_port_free(settings.host, settings.port)
        if settings.embedded_model:
            check_port_free(
                "127.0.0.1", settings.embedded_model_port, "SWITCHBOARD_EMBEDDED_MODEL_PORT"
            )
        migrate_database(settings)
        if settings.uses_embedded_redis:
            start_redis(settings, supervisor)
        else:
            check_redis(settings.effective_redis_url)
        if settings.embedded_model:
            join = ModelJoin(
                settings=settings, supervisor=supervisor,
                endpoint_id=register_embedded_model(settings),
                client=connect(settings.effective_redis_url),
            )  # fmt: skip
            join.begin()
        with session_scope() as session:
            admin = ensure_local_admin(session=session)
            link_token = create_sign_in_link(session=session, user=admin)
            found = find_local_servers(session=session, ports=settings.discovery_port_list)
    except (PreflightError, embedded_redis.EmbeddedRedisError) as exc:
        supervisor.stop_all()
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        supervisor.stop_all()
        raise typer.Exit(0) from None

    base = public_base_url(settings)
    try:
        env = child_env(settings)
        prepare_checks(settings)
        supervisor.spawn("worker", lowered(settings, worker_argv(settings)), env)
        supervisor.spawn("checker", lowered(settings, checker_argv(settings)), env)
        supervisor.spawn("beat", lowered(settings, beat_argv(settings)), env)
        supervisor.spawn("web", lowered(settings, web_argv(settings)), {**env, **web_env(settings)})
        for server in found:
            console.say(
                "up",
                f"found {server.name} ({len(server.models)} models) at {server.base_url}; "
                f"add it in one click at {base}/admin/endpoints",
            )
        problem = wait_until_healthy(base, supervisor, timeout=HEALTHY_TIMEOUT_S, join=join)
    except KeyboardInterrupt:
        supervisor.stop_all()
        raise typer.Exit(0) from None
    if problem is not None:
        console.say("up", f"warning: {problem}")
    if supervisor.exited() is None:
        # Last, once everything answers, so that it does not scroll away.
        building = join is not None and join.installing.is_set()
        print_sign_in(base, admin.email, link_token, building=building)
    raise typer.Exit(supervisor.wait())


HEALTHY_TIMEOUT_S = 180.0


# The parts `up` starts itself; a model server someone registered may be down for long.
OWN_PARTS = ("database", "redis", "worker")


def wait_until_healthy(
    base: str, supervisor: Supervisor, *, timeout: float, join: ModelJoin | None = None
) -> str | None:
    """Wait until ``/healthz`` shows the web app, the database, Redis and a worker up, and the
    embedded model too unless it is being installed (it joins later by itself); None when they
    are and the models too, else what is wrong. Parts that exit meanwhile are started again;
    returns at once if one cannot be."""
    import httpx

    deadline = time.monotonic() + timeout
    last = "the web app did not answer"
    while time.monotonic() < deadline:
        if not supervisor.tend():
            return None  # the supervisor says which one and stops everything
        try:
            report = httpx.get(f"{base}/healthz", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            report = None
        if isinstance(report, dict):
            down = [name for name in OWN_PARTS if not report.get(name, {}).get("ok")]
            if not down:
                if join is not None and (join.installing.is_set() or join.problem):
                    return join.problem  # it joins by itself; its lines say how far it is
                if join is not None and not join.joined.is_set():
                    last = "the embedded model is still loading"
                    time.sleep(0.5)
                    continue
                models = report.get("models", {})
                return None if models.get("ok") else f"models: {models.get('error') or 'down'}"
            last = f"not healthy yet: {', '.join(down)} (see {base}/healthz)"
        time.sleep(0.5)
    return last


def print_sign_in(base: str, email: str, token: str, *, building: bool = False) -> None:
    joining = " The embedded model joins by itself when it is ready." if building else ""
    if get_settings().log_format == "json":
        console.say("up", f"Switchboard is up at {base}; sign in as {email} with this one-time "
                    f"link: {base}/signin/link/{token}.{joining}")  # fmt: skip
        return
    model = (
        "  The embedded model joins by itself when it is ready (progress on the console and at "
        f"{base}/admin/endpoints).\n"
        if building
        else ""
    )
    typer.echo(
        f"\n  Switchboard is up at {base}\n{model}"
        f"  Sign in as {email} with this one-time link:\n\n"
        f"      {base}/signin/link/{token}\n\n"
        "  Press Ctrl-C to stop everything; `switchboard link` prints a new link.\n"
    )


@cli.command()
def link() -> None:
    """Print a new one-time sign-in link for the local admin."""
    from app.db import session_scope
    from app.services.accounts import create_sign_in_link, ensure_local_admin

    settings = load()
    migrate_database(settings)
    with session_scope() as session:
        admin = ensure_local_admin(session=session)
        token = create_sign_in_link(session=session, user=admin)
        email = admin.email
    print_sign_in(public_base_url(settings), email, token)


@cli.command()
def web() -> None:
    """Run only the web server (uvicorn); expects migrations applied and Redis reachable."""
    settings = load()
    os.environ.update(web_env(settings))
    os.execv(sys.executable, web_argv(settings))


@cli.command()
def worker(
    checks: Annotated[
        bool, typer.Option("--checks", help="Run sandboxed checks (the checks queue) instead.")
    ] = False,
) -> None:
    """Run only a Celery worker that carries out agent runs (or, with --checks, checks)."""
    settings = load()
    if checks:
        prepare_checks(settings)
        os.execv(sys.executable, checker_argv(settings))
    os.execv(sys.executable, worker_argv(settings))


@cli.command()
def beat() -> None:
    """Run the scheduler (Celery beat: the sweeper); run exactly one per deployment."""
    settings = load()
    os.execv(sys.executable, beat_argv(settings))


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest migration."""
    settings = load()
    migrate_database(settings)
    typer.echo("switchboard: database is up to date.")


@cli.command()
def createuser(
    email: Annotated[str, typer.Argument(help="Email address, used to sign in.")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the account admin rights.")] = False,
    name: Annotated[str, typer.Option(help="Display name (default: from the email).")] = "",
    password: Annotated[
        str | None,
        typer.Option(
            help="Password (at least 10 characters); prompted for when not given.",
            envvar="SWITCHBOARD_NEW_USER_PASSWORD",
        ),
    ] = None,
) -> None:
    """Create an account (``--admin`` for an administrator)."""
    from app.db import session_scope
    from app.services import ServiceError
    from app.services.accounts import create_user

    settings = load()
    migrate_database(settings)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as session:
            user = create_user(
                session=session, email=email, password=password, display_name=name, is_admin=admin
            )
    except ServiceError as exc:
        raise fail(exc.message) from None
    kind = "admin" if admin else "user"
    typer.echo(f"switchboard: created {kind} {user.email}.")


@cli.command()
def demo(
    owner: Annotated[
        str | None, typer.Option(help="Email of the owner (default: the first admin).")
    ] = None,
) -> None:
    """Create a demo workspace with the starter agents and one task."""
    from app.db import session_scope
    from app.models import User
    from app.services.accounts import normalise_email
    from app.services.demo import create_demo_workspace

    settings = load()
    migrate_database(settings)
    with session_scope() as session:
        query = select(User).where(User.is_admin).order_by(User.id)  # type: ignore[arg-type]
        if owner:
            query = select(User).where(User.email == normalise_email(owner))
        user = session.exec(query).first()
        if user is None:
            who = owner or "an admin"
            raise fail(f"No account for {who}; create one with `switchboard createuser --admin`.")
        demo = create_demo_workspace(session=session, owner=user)
    if demo.started is not None:
        from app.engine.dispatch import dispatch

        dispatch([run.id for run in demo.started.runs if run.id is not None])
    typer.echo(f"switchboard: created {public_base_url(settings)}/w/{demo.workspace.slug}")


model_cli = typer.Typer(help="The embedded model, and checks of any model endpoint.")
cli.add_typer(model_cli, name="model")


@model_cli.command("serve")
def model_serve() -> None:
    """Run only the embedded model server (Gemma 3 270M on llama-server) until Ctrl-C."""
    from app.runtime import embedded_model
    from app.runtime.preflight import PreflightError, check_port_free
    from app.runtime.supervisor import Supervisor

    settings = load()
    try:
        check_port_free(
            "127.0.0.1", settings.embedded_model_port, "SWITCHBOARD_EMBEDDED_MODEL_PORT"
        )
        server = embedded_model.start(
            settings.data_path,
            port=settings.embedded_model_port,
            parallel=settings.embedded_model_parallel,
            context=settings.embedded_model_context,
        )
    except (PreflightError, embedded_model.EmbeddedModelError) as exc:
        raise fail(str(exc)) from None
    supervisor = Supervisor()
    supervisor.adopt("embedded model", server.process)
    typer.echo(
        f"switchboard: serving {server.model_path.name} at {server.base_url}\n"
        f"  API key: in {settings.data_path / 'embedded_model_key'}\n"
        f"  Log: {settings.data_path / 'llama-server.log'}\n  Press Ctrl-C to stop."
    )
    raise typer.Exit(supervisor.wait())


@model_cli.command("test")
def model_test(
    endpoint: Annotated[str, typer.Argument(help="An endpoint's name or id, or a base URL.")],
    model: Annotated[
        str | None, typer.Option(help="Model to ask (default: the endpoint's first).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key, when ENDPOINT is a URL.", envvar="MODEL_API_KEY")
    ] = None,
    prompt: Annotated[str, typer.Option(help="What to ask.")] = "Say hello in five words.",
    max_tokens: Annotated[int, typer.Option(min=1, max=4096)] = 32,
) -> None:
    """Send one short chat; print time to first token, tokens/s and the reply."""
    from app.services import ServiceError
    from app.services.model_check import resolve_target, run_test_chat

    settings = load()
    try:
        target = resolve_target(settings, endpoint, model=model, api_key=api_key)
        report = run_test_chat(settings, target, prompt=prompt, max_tokens=max_tokens)
    except ServiceError as exc:
        raise fail(exc.message) from None
    typer.echo(f"endpoint:            {target.base_url}  model: {target.model}")
    typer.echo(f"time to first token: {report.first_token_s * 1000:.0f} ms")
    tokens_per_s = f"{report.tokens_per_s:.1f}" if report.tokens_per_s else "unknown"
    typer.echo(f"tokens/s:            {tokens_per_s} ({report.completion_tokens} tokens)")
    typer.echo(f"finish:              {report.finish_reason}")
    typer.echo(f"reply:               {report.text.strip()}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
