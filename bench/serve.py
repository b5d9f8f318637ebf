"""Serves R0 (``bench.minimal_app``) or R2 (the real receiver) under one uvicorn configuration.

``python -m bench.serve {r0,r2} --port P --config TOML --ready-file F``. The configuration is
the one ``payhooks serve`` uses (one worker, no access log, lifespan on, uvicorn's "auto" event
loop and HTTP parser), and R2 is built exactly as ``payhooks serve`` builds it: settings from the
TOML file, structlog configured from ``[log]``, ``create_app`` with a ``KafkaPublisher``. Once
uvicorn listens, the ready file receives the pid and the loop and HTTP implementations in use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from bench import minimal_app
from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from payhooks import logging as plog
from payhooks.config import load_settings

HOST = "127.0.0.1"  # loopback only


def build_app(target: str, config_path: Path) -> Starlette:
    if target == "r0":
        return minimal_app.create_app()
    settings = load_settings(config_path)
    plog.configure(settings.log.level, settings.log.format)
    return create_app(settings, KafkaPublisher(settings.kafka))


def uvicorn_config(app: Starlette, port: int) -> uvicorn.Config:
    """The same for R0 and R2, and as ``payhooks.services.serve`` configures the receiver."""
    return uvicorn.Config(
        app,
        host=HOST,
        port=port,
        loop="auto",  # uvloop when installed (uvicorn[standard])
        http="auto",  # httptools when installed
        workers=1,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )


async def _serve(server: uvicorn.Server, ready_file: Path) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            return
        await asyncio.sleep(0.02)
    loop = asyncio.get_running_loop()
    _announce(ready_file, {
        "pid": os.getpid(),
        "loop": f"{type(loop).__module__}.{type(loop).__qualname__}",
        "http": server.config.http_protocol_class.__qualname__,
    })  # fmt: skip
    await task


def _announce(path: Path, facts: dict[str, object]) -> None:
    """Write atomically: the orchestrator never reads a half-written file."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(facts))
    partial.replace(path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("target", choices=["r0", "r2"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", type=Path, required=True, help="the bench's payhooks.toml")
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args(argv)
    config = uvicorn_config(build_app(args.target, args.config), args.port)
    config.load()  # resolves "auto" to the HTTP protocol class reported in the ready file
    server = uvicorn.Server(config)
    # what uvicorn.Server.run does, with our ready announcement inside the same loop
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(_serve(server, args.ready_file))


if __name__ == "__main__":
    main()
