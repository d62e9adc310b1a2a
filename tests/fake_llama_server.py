"""A stand-in for llama-server in its own process: ``python -m tests.fake_llama_server PORT``.

It answers ``/health``, lists one model (owned by "llamacpp", as llama-server does) and streams
one answer to every chat or completion: enough to test the embedded model's start-and-join path
with real processes, without building llama-server.
"""

from __future__ import annotations

import sys

import uvicorn

from tests.scripted_server import Reply, ScriptedServer, answer, completion

MODEL = "gemma-3-270m-it-Q4_K_M.gguf"
ANSWER = "Joined and answering."


def main(port: int) -> None:
    app = ScriptedServer()
    app.port = port
    app.on("/health", Reply(200, {"status": "ok"}))
    app.on("/v1/models", Reply(200, {"object": "list", "data": [
        {"id": MODEL, "object": "model", "owned_by": "llamacpp"}]}))  # fmt: skip
    app.on("/v1/chat/completions", answer(ANSWER))
    first, *rest = ANSWER.split(" ")
    app.on("/v1/completions", completion([first, *(" " + word for word in rest)]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(int(sys.argv[1]))
