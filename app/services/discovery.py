"""Model servers people already run on this machine, found on their usual loopback ports.

Ollama (11434), llama.cpp's llama-server (8080), LM Studio (1234) and vLLM (8000) serve an
OpenAI-compatible API under ``/v1``. :func:`find_local_servers` asks each port in the
``discovery_ports`` setting for ``GET /v1/models`` with a short timeout (a closed port is
refused at once), then each model for its prompt format and parameter count, and leaves out
ports an endpoint already uses. The endpoints page offers what it finds as one-click endpoints.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlmodel import Session

from app.llm.client import ModelInfo, PromptFacts, list_models, probe_prompt_format
from app.llm.errors import ModelError
from app.services.endpoints import list_endpoints

PROBE_TIMEOUT_S = 1.0
USUAL_SERVERS = {11434: "Ollama", 8080: "llama.cpp", 1234: "LM Studio", 8000: "vLLM"}


@dataclass(frozen=True)
class FoundModel:
    name: str
    parameter_count: int | None
    prompt_format: str | None


@dataclass(frozen=True)
class FoundServer:
    name: str
    base_url: str
    models: list[FoundModel]


def base_url_for(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1"


def find_local_servers(
    *, session: Session, ports: tuple[int, ...], timeout: float = PROBE_TIMEOUT_S
) -> list[FoundServer]:
    """The servers answering on ``ports`` that no endpoint points at yet, in port order."""
    known = {endpoint.base_url for endpoint in list_endpoints(session=session)}
    candidates = [port for port in ports if base_url_for(port) not in known]
    if not candidates:
        return []
    # One thread per port: a port that swallows packets costs its timeout once, not in turn.
    with ThreadPoolExecutor(max_workers=len(candidates)) as pool:
        found = list(pool.map(lambda port: probe_server(port, timeout=timeout), candidates))
    return [server for server in found if server is not None]


def probe_server(port: int, *, timeout: float = PROBE_TIMEOUT_S) -> FoundServer | None:
    """The server on ``port`` with its models, or None when nothing OpenAI-compatible answers."""
    base_url = base_url_for(port)
    try:
        listed = list_models(base_url=base_url, api_key=None, timeout=timeout)
    except ModelError:
        return None
    kind = "llama.cpp" if any(info.owned_by == "llamacpp" for info in listed) else "openai"
    models = [_found_model(base_url, kind, info, timeout) for info in listed]
    name = USUAL_SERVERS.get(port, "Local server")
    return FoundServer(name=f"{name} on port {port}", base_url=base_url, models=models)


def _found_model(base_url: str, kind: str, info: ModelInfo, timeout: float) -> FoundModel:
    facts: PromptFacts = probe_prompt_format(
        base_url=base_url, api_key=None, model=info.id, server_kind=kind, timeout=timeout
    )
    return FoundModel(
        name=info.id,
        parameter_count=info.parameter_count or facts.parameter_count,
        prompt_format=facts.prompt_format,
    )
