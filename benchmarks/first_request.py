#!/usr/bin/env python3
"""Seconds from a command's process start to its first connection to the S3 endpoint.

The endpoint is reached through tests/proxy.py (no delay), which notes when it
accepts the first connection; the clock starts just before the process is
spawned. Every tool here opens its first connection to send its first
request, so this is start-up: the interpreter, imports, configuration and
client set-up, up to the first byte on the wire.

    python benchmarks/first_request.py --endpoint URL [--runs N] [--vs 'COMMAND B'] -- COMMAND ...

`{endpoint}` in COMMAND (and in AWS_ENDPOINT_URL_S3) is replaced by the proxy's address; prints one line per run
and the min / median / max (with --vs, the two commands alternate, and the ratio is taken run by run).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.proxy import Proxy


class _NotingProxy(Proxy):
    """The proxy, noting the CPU seconds the command had used when it connected first (less noisy than wall)."""

    pid = 0
    cpu_at_first = 0.0

    async def _accept(self, reader: Any, writer: Any) -> None:
        if not self.cpu_at_first and self.pid:
            self.cpu_at_first = _cpu_seconds(self.pid)
        await super()._accept(reader, writer)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def to_first_request(command: list[str], env: dict[str, str], endpoint: str) -> tuple[float, float]:
    """Wall and CPU seconds from the start of `command` to its first connection, through a recording proxy in front
    of `endpoint` (`{endpoint}` in the command and its environment is the proxy's address)."""
    port = urlsplit(endpoint).port
    assert port is not None
    proxy = _NotingProxy(port)
    with proxy:
        url = proxy.url
        argv = [word.replace("{endpoint}", url) for word in command]
        environ = {name: value.replace("{endpoint}", url) for name, value in env.items()}
        started = time.time()
        process = subprocess.Popen(argv, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        proxy.pid = process.pid
        _, errors = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited with {process.returncode}: {errors.decode()[-1000:]}")
        first = proxy.behaviour.first_connection_at
    if not first:
        raise RuntimeError("the command never connected to the endpoint")
    return first - started, proxy.cpu_at_first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True, help="the S3 endpoint the proxy forwards to")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vs", default="", help="a second command, run in turn with the first")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    env = dict(os.environ) | {"AWS_ENDPOINT_URL_S3": "{endpoint}"}
    other = shlex.split(args.vs)
    times: list[tuple[float, float]] = []
    others: list[tuple[float, float]] = []
    for _ in range(args.runs):
        times.append(to_first_request(command, env, args.endpoint))
        if other:
            others.append(to_first_request(other, env, args.endpoint))
        print(f"wall {times[-1][0]:.3f} cpu {times[-1][1]:.3f}"
              + (f"  vs wall {others[-1][0]:.3f} cpu {others[-1][1]:.3f}" if other else ""), flush=True)
    for what, index in (("wall", 0), ("cpu", 1)):
        print(f"A {what}: {spread([t[index] for t in times])}")
        if other:
            print(f"B {what}: {spread([t[index] for t in others])}")
            print(f"A/B {what}: {spread([a[index] / max(b[index], 1e-3) for a, b in zip(times, others, strict=True)])}")
    return 0


def spread(values: list[float]) -> str:
    return f"min {min(values):.3f} median {statistics.median(values):.3f} max {max(values):.3f}"


if __name__ == "__main__":
    sys.exit(main())
