#!/usr/bin/env python3
"""Side-by-side benchmark: cartload-uploader against aws cli, s5cmd and curl, in one run.

Run by `make bench` (which installs the anchors from benchmarks/requirements.txt
into .bench-tools/). Starts a local SeaweedFS and the mock Zenodo server on
127.0.0.1, generates the synthetic datasets (datasets.py; ~7 GiB, reused),
runs every tool in turn for several rounds (the order rotates each round; a
fresh destination prefix per round; our hash cache starts cold on a first
upload), checks after every round that the bytes arrived intact, and prints
medians: wall seconds, client CPU seconds, peak RSS, and our ratio to each
anchor (the median of the per-round ratios). Absolute times drift on a shared
2-core machine; the ratios are the targets.

Reference rows (s5cmd with our hash pass beside it, our transfer engine
alone, curl with an md5sum beside it) are the floors under the targets ours misses;
they are shown, never judged.

    python benchmarks/bench.py [--rounds N] [--only WORKLOAD ...] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.datasets import SyntheticDataset, prepare, restore, rewrite_same_size  # noqa: E402
from benchmarks.first_request import to_first_request  # noqa: E402
from tests.servers import ADMIN, SeaweedFS, free_ports  # noqa: E402

BUCKET = "bench"
MiB_ = 1024 * 1024
ZENODO_TOKEN = "bench-token-not-a-secret"
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
# A workload name may end in a one-way network delay ("-15ms"): then every tool talks to the same
# local SeaweedFS through tests/proxy.py, started as a process of its own, which adds that delay to each
# direction (the TCP handshake itself is not delayed, which flatters tools that open a connection per request).
WORKLOADS = ("startup", "first-request", "large", "large-15ms", "small", "small-15ms", "small-40ms", "tiny", "noop",
             "noop-15ms", "one-changed", "huge-file", "resume", "zenodo", "shards")


@dataclass(frozen=True)
class Measurement:
    """Whole-process figures of one command, from wait4()."""

    wall: float
    cpu: float
    rss_mib: float
    written: int | None = None  # objects written, for the re-run workloads
    resent: int | None = None  # bytes of files the server stored more than once (the shards workload)


@dataclass
class Results:
    """Every measurement, by (workload, tool), in round order."""

    runs: dict[tuple[str, str], list[Measurement]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    last_rounds: list[float] | None = None  # the per-round values behind the last ratio asked for (its spread)

    def add(self, workload: str, tool: str, measurement: Measurement) -> None:
        self.runs.setdefault((workload, tool), []).append(measurement)
        written = "" if measurement.written is None else f", {measurement.written} written"
        written += "" if measurement.resent is None else f", {measurement.resent} B of files stored twice"
        print(f"  {workload:<12} {tool:<14} {measurement.wall:7.2f} s wall {measurement.cpu:7.2f} s CPU"
              f" {measurement.rss_mib:7.1f} MiB{written}", flush=True)

    def median(self, workload: str, tool: str, attr: str) -> float:
        return statistics.median(getattr(m, attr) for m in self.runs[(workload, tool)])

    def spread(self, workload: str, tool: str, attr: str) -> str:
        """The lowest and highest round, beside a median: how far one round may be from another."""
        values = [getattr(m, attr) for m in self.runs[(workload, tool)]]
        return f"{min(values):.2f}-{max(values):.2f}"

    def per_file_ratio(self, workload: str) -> float:
        """The median over rounds of ours/s5cmd for what the files beyond the first cost (the fixed cost left out)."""
        runs = [self.runs[(workload, tool)] for tool in ("ours", "ours, one file", "s5cmd", "s5cmd, one file")]
        return self._median_of([(ours.wall - ours_one.wall) / max(s5cmd.wall - s5cmd_one.wall, 1e-9)
                                for ours, ours_one, s5cmd, s5cmd_one in zip(*runs, strict=False)])

    def ratio(self, workload: str, tool: str, anchor: str, attr: str) -> float:
        """The median over rounds of ours/anchor (rounds paired in order)."""
        pairs = zip(self.runs[(workload, tool)], self.runs[(workload, anchor)], strict=False)
        return self._median_of([getattr(a, attr) / max(getattr(b, attr), 1e-9) for a, b in pairs])

    def _median_of(self, rounds: list[float]) -> float:
        self.last_rounds = rounds
        return statistics.median(rounds)


def measure(command: list[str], env: dict[str, str], cwd: Path | None = None) -> Measurement:
    """Run a command to completion; wall, user+system CPU and peak RSS of the whole process.

    GNU time does the measuring: a child forked from this (larger) Python
    process would report this process's RSS as its own peak.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as figures:
        started = time.perf_counter()
        done = subprocess.run([TIME, "-q", "-f", "%U %S %M", "-o", figures.name, *command], env=env, cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            tail = done.stdout.decode(errors="replace")[-2000:]
            raise RuntimeError(f"{shlex.join(command)} exited with {done.returncode}:\n{tail}")
        user, system, rss_kib = figures.read().split()[-3:]
    return Measurement(wall, float(user) + float(system), int(rss_kib) / 1024)


class Bench:
    """The servers, tools and environment one benchmark run shares."""

    def __init__(self, workdir: Path, tools: Path, rounds: int) -> None:
        self.workdir = workdir
        self.tools = tools
        self.rounds = rounds
        self.results = Results()
        self.endpoint = ""
        self.client: Any = None
        self.server: SeaweedFS | None = None  # its metadata log counts the writes of each object
        self._proxies: dict[int, tuple[subprocess.Popen[str], str]] = {}
        self.resume_lost: list[float] = []  # MiB lost at each interrupt of the resume workload
        home = workdir / "home"  # no user ~/.aws or cache leaks into the anchors' runs
        (home / ".aws").mkdir(parents=True, exist_ok=True)
        (home / ".aws" / "config").write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
        self.env = {
            "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(home),
            "AWS_ACCESS_KEY_ID": ADMIN.access_key, "AWS_SECRET_ACCESS_KEY": ADMIN.secret_key,
            "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "LANG": "C.UTF-8",
        }

    def endpoint_for(self, delay_ms: int) -> str:
        """The server itself, or a delaying proxy in front of it (one process per delay, kept for the run)."""
        if not delay_ms:
            return self.endpoint
        if delay_ms not in self._proxies:
            process = subprocess.Popen([sys.executable, "-m", "tests.proxy", "--upstream",
                                        self.endpoint.split("//")[1], "--delay-ms", str(delay_ms)],
                                       cwd=REPO, stdout=subprocess.PIPE, text=True)
            assert process.stdout is not None
            self._proxies[delay_ms] = (process, process.stdout.readline().strip())
        return self._proxies[delay_ms][1]

    def stop_proxies(self) -> None:
        for process, _ in self._proxies.values():
            process.terminate()
            process.wait()

    # -- the tools, as a researcher would run them ----------------------------------------

    def ours(self, source: Path, prefix: str, cache: str, delay_ms: int = 0) -> tuple[list[str], dict[str, str]]:
        command = [sys.executable, str(REPO / "entrypoint.py"), "upload_aws", "--in-dir", str(source),
                   "--s3-dir", f"s3://{BUCKET}/{prefix}", "--quiet", "--no-progress", "--no-markers"]
        return command, self.env | {"AWS_ENDPOINT_URL_S3": self.endpoint_for(delay_ms),
                                    "CARTLOAD_UPLOADER_CACHE_DIR": str(self.workdir / "cache" / cache)}

    def aws(self, verb: str, source: Path, prefix: str, delay_ms: int = 0) -> list[str]:
        extra = ["--recursive"] if verb == "cp" else []
        return [str(self.tools / "aws"), "s3", verb, *extra, "--only-show-errors", "--endpoint-url",
                self.endpoint_for(delay_ms), f"{source}/", f"s3://{BUCKET}/{prefix}/"]

    def s5cmd(self, verb: str, source: Path, prefix: str, delay_ms: int = 0) -> list[str]:
        return [str(self.tools / "s5cmd"), "--endpoint-url", self.endpoint_for(delay_ms), "--log", "error", verb,
                f"{source}/*", f"s3://{BUCKET}/{prefix}/"]

    # -- checks ---------------------------------------------------------------------------

    def listing(self, prefix: str) -> dict[str, tuple[int, str, Any]]:
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
            for item in page.get("Contents", []):
                found[item["Key"][len(prefix) + 1:]] = (item["Size"], item["ETag"].strip('"'), item["LastModified"])
        return found

    def check_intact(self, dataset: SyntheticDataset, prefix: str) -> None:
        """Every file of the dataset is there with its size and an ETag that only its bytes give."""
        listing = self.listing(prefix)
        for name, facts in dataset.files.items():
            if name not in listing:
                raise RuntimeError(f"{prefix}/{name} is missing")
            size, etag, _ = listing[name]
            if size != facts.size or etag not in facts.etags:
                raise RuntimeError(f"{prefix}/{name}: size {size} etag {etag}, expected {facts.size} {facts.etags}")

    def count_written(self, prefix: str, before: dict[str, tuple[int, str, Any]]) -> int:
        after = self.listing(prefix)
        return sum(1 for key, value in after.items() if before.get(key) != value)


# -- the workloads ---------------------------------------------------------------------------


def startup(bench: Bench, data: dict[str, SyntheticDataset]) -> None:
    """`--help` start-up time (boto3 must not be imported for it)."""
    for _ in range(10):
        bench.results.add("startup", "ours --help",
                          measure([sys.executable, str(REPO / "entrypoint.py"), "--help"], bench.env))
    for _ in range(10):
        bench.results.add("startup", "aws --version", measure([str(bench.tools / "aws"), "--version"], bench.env))


def first_request(bench: Bench, data: dict[str, SyntheticDataset]) -> None:
    """From a process's start to its first request on the wire: ours (one file and its catalog, a first upload),
    the same start-up with nothing but our botocore client and one listing (the floor of a tool on botocore), and
    s5cmd's. The endpoint is reached through a proxy that notes the first connection (first_request.py)."""
    single = data["single"].directory
    listed = "first-request/listed"  # what the listing alone lists, uploaded once beforehand
    measure(*bench.ours(single, listed, cache="first-request-listed"))
    for round_ in range(bench.rounds):
        for tool in _rotated(["ours", "listing alone", "s5cmd"], round_):
            prefix = f"first-request/{tool.replace(' ', '-')}/r{round_}"
            if tool == "ours":
                command, env = bench.ours(single, prefix, cache=f"first-request-r{round_}")
            elif tool == "listing alone":
                command = [sys.executable, str(REPO / "benchmarks" / "listing_alone.py"), str(single), BUCKET, listed]
                env = dict(bench.env)
            else:
                command = bench.s5cmd("cp", single, prefix)
                command[command.index("--endpoint-url") + 1] = "{endpoint}"
                env = dict(bench.env)
            wall, cpu = to_first_request(command, env | {"AWS_ENDPOINT_URL_S3": "{endpoint}"}, bench.endpoint)
            bench.results.add("first-request", tool, Measurement(wall, cpu, 0.0))


def split_workload(workload: str) -> tuple[str, int]:
    """'small-15ms' -> ('small', 15); 'one-changed' -> ('one-changed', 0)."""
    name, _, delay = workload.rpartition("-")
    if name and delay.endswith("ms") and delay[:-2].isdigit():
        return name, int(delay[:-2])
    return workload, 0


def first_upload(workload: str) -> Callable[[Bench, dict[str, SyntheticDataset]], None]:
    name, delay = split_workload(workload)

    def run(bench: Bench, data: dict[str, SyntheticDataset]) -> None:
        dataset = data[name]
        source = dataset.directory
        # aws cli only where it finishes in reasonable time; the reference rows where they tell the floor:
        # s5cmd with our hash pass beside it (a first upload's hashing); for many small files our engine alone
        # and our own per-file work alone (ours takes about their sum).
        tools = ["ours", "s5cmd"] + (["aws cli"] if not delay and name != "tiny" else [])
        tools += ["s5cmd + hash pass"] if workload == "large" else []
        tools += ["engine alone", "bookkeeping alone"] if name in ("small", "tiny") else []
        # The same tools on one file and its catalog: a run's fixed cost (start-up, the checks and round trips
        # before the first send and after the last), apart from what each further file costs.
        tools += ["ours, one file", "s5cmd, one file"] if name == "small" else []
        for round_ in range(bench.rounds):
            for tool in _rotated(tools, round_):
                prefix = f"{workload}/{tool.replace(' ', '-').replace(',', '')}/r{round_}"
                if tool == "ours":
                    command, env = bench.ours(source, prefix, cache=f"{workload}-r{round_}", delay_ms=delay)
                elif tool == "ours, one file":
                    command, env = bench.ours(data["single"].directory, prefix, cache=f"{workload}-single-r{round_}",
                                              delay_ms=delay)
                elif tool == "s5cmd, one file":
                    command, env = bench.s5cmd("cp", data["single"].directory, prefix, delay), bench.env
                elif tool == "s5cmd + hash pass":
                    hash_pass = shlex.join([sys.executable, str(REPO / "benchmarks" / "hash_pass.py"), str(source)])
                    command = ["sh", "-c", f'"$@" & sent=$!; {hash_pass} && wait $sent', "sh",
                               *bench.s5cmd("cp", source, prefix, delay)]
                    env = bench.env
                elif tool in ("engine alone", "bookkeeping alone"):
                    script = REPO / "benchmarks" / f"{tool.replace(' ', '_')}.py"
                    command = [sys.executable, str(script), str(source), BUCKET, prefix]
                    cache = bench.workdir / "cache" / f"{workload}-{tool.split()[0]}-r{round_}"  # cold, as ours
                    env = bench.env | {"AWS_ENDPOINT_URL_S3": bench.endpoint_for(delay),
                                       "CARTLOAD_UPLOADER_CACHE_DIR": str(cache)}
                elif tool == "s5cmd":
                    command, env = bench.s5cmd("cp", source, prefix, delay), bench.env
                else:
                    command, env = bench.aws("cp", source, prefix, delay), bench.env
                # The anchors upload the whole directory; it holds exactly the catalog's files.
                bench.results.add(workload, tool, measure(command, env))
                if tool.endswith("one file"):
                    bench.check_intact(data["single"], prefix)
                elif tool != "bookkeeping alone":  # it sends no bytes
                    bench.check_intact(dataset, prefix)
    return run


def rerun(kind: str) -> Callable[[Bench, dict[str, SyntheticDataset]], None]:
    """Re-run each tool's sync against the prefix its last first-upload round filled."""
    base, delay = split_workload(kind)
    names = ("small",) if delay else ("large", "small")

    def run(bench: Bench, data: dict[str, SyntheticDataset]) -> None:
        for name in names:
            changed: list[str] = []
            try:
                _rerun_rounds(bench, data[name], base, delay, changed)
            finally:
                for table in changed:
                    restore(data[name], table)
    return run


def _rerun_rounds(bench: Bench, dataset: SyntheticDataset, kind: str, delay: int, changed: list[str]) -> None:
    last = bench.rounds - 1
    name = dataset.name
    filled = f"{name}-{delay}ms" if delay else name  # the first-upload workload whose prefixes are re-run
    label = f"{kind}-{delay}ms {name}" if delay else f"{kind} {name}"
    tools = ["ours", "s5cmd"] + ([] if delay else ["aws cli"])
    tools += ["listing alone"] if kind == "noop" else []  # the floor of a no-op run on botocore
    for round_ in range(bench.rounds):
        if kind == "one-changed":
            # A different table each round: new content, same size, an older mtime.
            table = sorted(n for n in dataset.files if n.endswith(".tsv"))[round_]
            changed.append(table)
            dataset = rewrite_same_size(dataset, table, f"changed-{round_}")
        for tool in _rotated(tools, round_):
            # Each tool re-runs the prefix it filled; the listing alone lists the one ours filled.
            prefix = f"{filled}/{'ours' if tool == 'listing alone' else tool.replace(' ', '-')}/r{last}"
            before = bench.listing(prefix)
            time.sleep(1.1)  # LastModified has 1 s resolution: a rewrite must show
            if tool == "ours":
                command, env = bench.ours(dataset.directory, prefix, cache=f"{filled}-r{last}", delay_ms=delay)
            elif tool == "s5cmd":
                command, env = bench.s5cmd("sync", dataset.directory, prefix, delay), bench.env
            elif tool == "listing alone":
                command = [sys.executable, str(REPO / "benchmarks" / "listing_alone.py"), str(dataset.directory),
                           BUCKET, prefix]
                env = bench.env | {"AWS_ENDPOINT_URL_S3": bench.endpoint_for(delay)}
            else:
                command, env = bench.aws("sync", dataset.directory, prefix, delay), bench.env
            m = measure(command, env)
            written = bench.count_written(prefix, before)
            bench.results.add(label, tool, Measurement(m.wall, m.cpu, m.rss_mib, written))
            if tool == "ours":
                bench.check_intact(dataset, prefix)


def resume(bench: Bench, data: dict[str, SyntheticDataset]) -> None:
    """A 1 GiB file interrupted (SIGTERM) at 60 %, then the same command again: what was kept, what was re-sent.

    The goal is that the second run sends the file less what the store held at the interrupt, and that the
    interrupt lost no more than the parts in flight (8 x 8 MiB).
    """
    dataset = data["zenodo"]  # one 1 GiB file and its catalog
    for round_ in range(bench.rounds):
        prefix = f"resume/r{round_}"
        command, env = bench.ours(dataset.directory, prefix, cache=f"resume-r{round_}")
        command = [arg for arg in command if arg not in ("--quiet", "--no-progress")]  # progress lines tell when
        env = env | {"CARTLOAD_UPLOADER_LOG_INTERVAL": "0.05"}
        shown = _interrupt_at(command, env, percent=60)
        report = bench.workdir / f"resume-r{round_}.json"
        m = measure([*command, "--report", str(report)], env)
        facts = json.loads(report.read_text())["totals"]
        size = dataset.files["genes_all.pmtiles"].size
        resent, lost = size - facts["bytes_resumed"], max(0, shown - facts["bytes_resumed"])
        bench.results.add("resume", "ours", Measurement(m.wall, m.cpu, m.rss_mib))
        bench.results.notes.append(f"resume round {round_}: interrupted at {100 * shown / size:.0f} %"
                                   f" ({shown / MiB_:.0f} MiB shown sent); the next run kept"
                                   f" {facts['bytes_resumed'] / MiB_:.0f} MiB and re-sent {resent / MiB_:.0f} MiB;"
                                   f" lost at the interrupt: {lost / MiB_:.0f} MiB (parts in flight, at most 64)")
        bench.resume_lost.append(lost / MiB_)
        bench.check_intact(dataset, prefix)


def _interrupt_at(command: list[str], env: dict[str, str], percent: int) -> int:
    """Run `command`, SIGTERM it once its progress line shows `percent`; the bytes that line showed sent."""
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    shown = 0
    for line in process.stderr:
        if line.startswith("progress:") and int(line.split("(")[1].split("%")[0]) >= percent:
            shown = _bytes_of(line.split()[1], line.split()[2])
            process.send_signal(signal.SIGTERM)
            break
    process.stderr.read()
    if process.wait() != 130 or not shown:
        raise RuntimeError("the run to interrupt ended before it reached the percentage")
    return shown


def _bytes_of(number: str, unit: str) -> int:
    return int(float(number) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit.rstrip(",")])


def huge_file(bench: Bench, data: dict[str, SyntheticDataset]) -> None:
    """One 5 GiB file: memory at the most jobs a user may ask for (one round: RSS does not drift like time does)."""
    dataset = data["huge"]
    for tool in ("ours", "s5cmd", "aws cli"):
        prefix = f"huge/{tool.replace(' ', '-')}"
        if tool == "ours":
            command, env = bench.ours(dataset.directory, prefix, cache="huge")
            command += ["--n-jobs", "256"]
        elif tool == "s5cmd":
            command, env = bench.s5cmd("cp", dataset.directory, prefix), bench.env
        else:
            command, env = bench.aws("cp", dataset.directory, prefix), bench.env
        bench.results.add("huge-file", tool, measure(command, env))
        bench.check_intact(dataset, prefix)
        _delete_prefix(bench, prefix)


def zenodo(bench: Bench, data: dict[str, SyntheticDataset]) -> None:
    """One 1 GiB file into a new deposition of the mock Zenodo, against `curl -T` of the same file."""
    import requests

    dataset = data["zenodo"]
    port = free_ports(1)[0]
    server = subprocess.Popen([sys.executable, "-m", "tests.mock_zenodo", "--port", str(port),
                               "--token", ZENODO_TOKEN], cwd=REPO, stdout=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    headers = {"Authorization": f"Bearer {ZENODO_TOKEN}"}
    token_file = bench.workdir / "zenodo-token"
    token_file.write_text(ZENODO_TOKEN)
    header_file = bench.workdir / "zenodo-headers"  # curl reads the token from a file, not argv
    header_file.write_text(f"Authorization: Bearer {ZENODO_TOKEN}\nContent-Type: application/octet-stream\n")
    name, facts = "genes_all.pmtiles", dataset.files["genes_all.pmtiles"]
    try:
        _wait_for(lambda: requests.get(f"{api}/deposit/depositions", headers=headers, timeout=5).ok)
        for round_ in range(bench.rounds):
            # 'curl + md5sum': curl -T with an MD5 of the file computed beside it, the work a checked
            # upload cannot skip (Zenodo's checksum is compared with it) on the same 2 cores.
            for tool in _rotated(["ours", "curl", "curl + md5sum"], round_):
                if tool == "ours":
                    # A title of its own each round: a re-run with the same title goes on with the earlier draft.
                    command = [sys.executable, str(REPO / "entrypoint.py"), "upload_zenodo", "--in-dir",
                               str(dataset.directory), "--upload-method", "files", "--files", name,
                               "--zenodo-token", str(token_file), "--zenodo-url", api, "--title",
                               f"bench round {round_}", "--creators", "Doe, Jane", "--quiet", "--no-progress"]
                    env = bench.env | {"CARTLOAD_UPLOADER_CACHE_DIR": str(bench.workdir / "cache" / f"z{round_}")}
                    bench.results.add("zenodo", tool, measure(command, env))
                    deposition = requests.get(f"{api}/deposit/depositions", headers=headers, timeout=30).json()[0]
                else:
                    deposition = requests.post(f"{api}/deposit/depositions", json={}, headers=headers,
                                               timeout=30).json()
                    command = ["curl", "-sS", "--fail", "-o", "/dev/null", "-H", f"@{header_file}",
                               "-T", str(dataset.directory / name), f"{deposition['links']['bucket']}/{name}"]
                    if tool == "curl + md5sum":
                        command = ["sh", "-c", '"$@" & sent=$!; md5sum "$0" >/dev/null && wait $sent',
                                   str(dataset.directory / name), *command]
                    bench.results.add("zenodo", tool, measure(command, bench.env))
                    deposition = requests.get(deposition["links"]["self"], headers=headers, timeout=30).json()
                stored = {f["filename"]: f["checksum"] for f in deposition["files"]}
                if stored != {name: facts.md5}:
                    raise RuntimeError(f"zenodo ({tool}): deposition holds {stored}, expected {name} {facts.md5}")
    finally:
        server.terminate()
        server.wait()


# Four workers of one upload, started together, as a Slurm array or an indexed Job would start them; the
# shell's exit status fails if any of them fails, and GNU time adds up their CPU.
FOUR_SHARDS = ('pids=; for i in 1 2 3 4; do "$@" --shard "$i/4" & pids="$pids $!"; done;'
               ' status=0; for pid in $pids; do wait "$pid" || status=1; done; exit $status')


def shards(bench: Bench, data: dict[str, SyntheticDataset]) -> None:
    """The large dataset split over 4 concurrent workers (--shard I/4) against one process, on the same data.

    On one machine the point is correctness and no byte sent twice, not speed: the server's own log counts
    the writes of every object; each round checks every object intact and the catalog there.
    """
    assert bench.server is not None
    dataset = data["large"]
    for round_ in range(bench.rounds):
        for tool in _rotated(["ours", "ours 4 shards"], round_):
            prefix = f"shards/{tool.replace(' ', '-')}/r{round_}"
            command, env = bench.ours(dataset.directory, prefix, cache=f"shards-{tool.replace(' ', '-')}-r{round_}")
            if tool != "ours":
                command = ["sh", "-c", FOUR_SHARDS, "sh", *command]
            started = time.time_ns()
            m = measure(command, env)
            bench.check_intact(dataset, prefix)
            writes = [w for w in bench.server.writes(BUCKET, f"{prefix}/") if w.ns >= started
                      and "/.cartload-uploader/" not in f"/{w.key}"]  # the runs' leases: bookkeeping, not data
            counts = Counter(w.key.rsplit("/", 1)[1] for w in writes)
            resent = sum((count - 1) * dataset.files[name].size for name, count in counts.items()
                         if name != "catalog.yaml")
            bench.results.add("shards", tool, Measurement(m.wall, m.cpu, m.rss_mib, len(writes), resent))


def _rotated(tools: list[str], round_: int) -> list[str]:
    shift = round_ % len(tools)
    return tools[shift:] + tools[:shift]


def _wait_for(ready: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _delete_prefix(bench: Bench, prefix: str) -> None:
    keys = [{"Key": f"{prefix}/{name}"} for name in bench.listing(prefix)]
    for start in range(0, len(keys), 1000):
        bench.client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys[start:start + 1000]})


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    workload: str
    what: str
    measured: Callable[[Results], float]
    limit: float
    reference: bool = False  # shown for what it explains (a floor, a physical limit), never judged

    def line(self, results: Results) -> tuple[str, bool]:
        results.last_rounds = None
        value = self.measured(results)
        rounds = results.last_rounds  # a ratio's rounds, when it is one
        spread = f"{min(rounds):.2f}-{max(rounds):.2f}" if rounds else ""
        ok = value <= self.limit or self.reference
        verdict = "reference" if self.reference else "met" if ok else "MISSED"
        return f"| {self.workload} | {self.what} | {value:.2f} | {spread} | <= {self.limit:g} | {verdict} |", ok


RESUME_LOST: list[float] = []  # filled by main() from the resume workload


def _written(results: Results, workloads: tuple[str, ...]) -> list[int]:
    return [m.written or 0 for k in workloads if (k, "ours") in results.runs for m in results.runs[(k, "ours")]]


PER_FILE = ("wall of the files beyond the first, ours / s5cmd (reference: each tool's run of one file and its"
            " catalog subtracted, i.e. the fixed cost left out)")
TARGETS = [
    Target("large", "wall, ours / s5cmd", lambda r: r.ratio("large", "ours", "s5cmd", "wall"), 1.0),
    Target("large", "CPU, ours / s5cmd", lambda r: r.ratio("large", "ours", "s5cmd", "cpu"), 1.2),
    Target("large", "wall, ours / s5cmd with our hash pass beside it (reference)",
           lambda r: r.ratio("large", "ours", "s5cmd + hash pass", "wall"), 1.0, reference=True),
    Target("large-15ms", "wall, ours / s5cmd", lambda r: r.ratio("large-15ms", "ours", "s5cmd", "wall"), 1.0),
    Target("large-15ms", "CPU, ours / s5cmd", lambda r: r.ratio("large-15ms", "ours", "s5cmd", "cpu"), 1.2),
    Target("small", "wall, ours / s5cmd", lambda r: r.ratio("small", "ours", "s5cmd", "wall"), 1.0),
    Target("small", "wall, engine alone / s5cmd (reference: our PUTs with nothing else)",
           lambda r: r.ratio("small", "engine alone", "s5cmd", "wall"), 1.0, reference=True),
    Target("small", PER_FILE, lambda r: r.per_file_ratio("small"), 1.0, reference=True),
    Target("small-15ms", "wall, ours / s5cmd", lambda r: r.ratio("small-15ms", "ours", "s5cmd", "wall"), 1.0),
    Target("small-15ms", PER_FILE, lambda r: r.per_file_ratio("small-15ms"), 1.0, reference=True),
    Target("small-40ms", "wall, ours / s5cmd", lambda r: r.ratio("small-40ms", "ours", "s5cmd", "wall"), 1.2),
    Target("small-40ms", PER_FILE, lambda r: r.per_file_ratio("small-40ms"), 1.2, reference=True),
    Target("small-40ms", "wall, engine alone / s5cmd (reference)",
           lambda r: r.ratio("small-40ms", "engine alone", "s5cmd", "wall"), 1.2, reference=True),
    Target("tiny", "wall, ours / s5cmd (20,000 files)", lambda r: r.ratio("tiny", "ours", "s5cmd", "wall"), 1.2),
    Target("tiny", "wall, engine alone / s5cmd (reference)",
           lambda r: r.ratio("tiny", "engine alone", "s5cmd", "wall"), 1.2, reference=True),
    Target("noop large", "wall, ours / aws s3 sync",
           lambda r: r.ratio("noop large", "ours", "aws cli", "wall"), 1.0),
    Target("noop large", "wall, listing alone / aws s3 sync (reference: start-up, botocore client, one listing)",
           lambda r: r.ratio("noop large", "listing alone", "aws cli", "wall"), 1.0, reference=True),
    Target("noop small", "wall, ours / aws s3 sync",
           lambda r: r.ratio("noop small", "ours", "aws cli", "wall"), 1.0),
    Target("noop small", "wall, listing alone / aws s3 sync (reference)",
           lambda r: r.ratio("noop small", "listing alone", "aws cli", "wall"), 1.0, reference=True),
    Target("noop-15ms small", "wall, ours / s5cmd sync",
           lambda r: r.ratio("noop-15ms small", "ours", "s5cmd", "wall"), 1.0),
    Target("noop-15ms small", "wall, listing alone / s5cmd sync (reference: start-up, botocore client, one listing)",
           lambda r: r.ratio("noop-15ms small", "listing alone", "s5cmd", "wall"), 1.0, reference=True),
    Target("noop", "objects written by ours (max of rounds)",
           lambda r: max(_written(r, ("noop large", "noop small", "noop-15ms small"))), 0),
    # The changed file, and the catalog that names it, withdrawn meanwhile and published again: 2.
    Target("one-changed", "objects written by ours, distance from 2 (worst round)",
           lambda r: max(abs(w - 2) for w in _written(r, ("one-changed large", "one-changed small"))), 0),
    Target("huge-file", "peak RSS of ours, MiB (--n-jobs 256)", lambda r: r.median("huge-file", "ours", "rss_mib"),
           200),
    Target("resume", "MiB lost at an interrupt at 60 % (worst round; parts in flight: at most 64)",
           lambda r: max(RESUME_LOST or [0.0]), 64),
    Target("zenodo", "wall, ours / curl -T", lambda r: r.ratio("zenodo", "ours", "curl", "wall"), 1.1),
    Target("zenodo", "wall, ours / curl -T with md5sum beside it (reference)",
           lambda r: r.ratio("zenodo", "ours", "curl + md5sum", "wall"), 1.1, reference=True),
    Target("zenodo", "peak RSS of ours, MiB", lambda r: r.median("zenodo", "ours", "rss_mib"), 100),
    Target("startup", "`--help`, seconds", lambda r: r.median("startup", "ours --help", "wall"), 0.3),
    Target("first-request", "`upload_aws` process start to first request sent, seconds",
           lambda r: r.median("first-request", "ours", "wall"), 0.15),
    Target("first-request", "the same, listing alone (reference: start-up, botocore client, one listing)",
           lambda r: r.median("first-request", "listing alone", "wall"), 0.15, reference=True),
    Target("first-request", "CPU seconds to it, ours / listing alone (reference)",
           lambda r: r.ratio("first-request", "ours", "listing alone", "cpu"), 1.0, reference=True),
    Target("shards", "4 shards vs 1 process: bytes of files stored twice (max of rounds)",
           lambda r: max(m.resent or 0 for m in r.runs[("shards", "ours 4 shards")]), 0),
    Target("shards", "4 shards vs 1 process: objects written, 4 shards - 1 process (max of rounds)",
           lambda r: max((a.written or 0) - (b.written or 0) for a, b in zip(
               r.runs[("shards", "ours 4 shards")], r.runs[("shards", "ours")], strict=False)), 1),
    Target("shards", "4 shards vs 1 process: wall, 4 shards / 1 process (reference: one machine, 2 cores)",
           lambda r: r.ratio("shards", "ours 4 shards", "ours", "wall"), 1.0, reference=True),
]


def report(results: Results, rounds: int) -> tuple[str, bool]:
    """The markdown tables: medians per workload and tool, then each target."""
    lines = [f"Run {date.today().isoformat()} on {os.cpu_count()} cores ({_cpu_name()}), {rounds} rounds"
             " (huge-file: 1), medians, and beside them the lowest-highest round; ratios are medians of per-round"
             " ours/anchor, their spread the lowest-highest per-round ratio. `first-request`: seconds (wall) and"
             " CPU seconds from the process's start to its first connection to the endpoint.", "",
             "| workload | tool | wall s | wall spread | CPU s | CPU spread | peak RSS MiB | written | wall ratio |"
             " CPU ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (workload, tool), runs in results.runs.items():
        anchors = [t for (w, t) in results.runs if w == workload and t != tool]
        written = "" if runs[0].written is None else "/".join(str(m.written) for m in runs)
        ratio_wall = ratio_cpu = ""
        if tool == "ours" and anchors:
            ratio_wall = " ".join(f"{results.ratio(workload, 'ours', a, 'wall'):.2f} x {a}" for a in anchors)
            ratio_cpu = " ".join(f"{results.ratio(workload, 'ours', a, 'cpu'):.2f} x {a}" for a in anchors)
        lines.append(f"| {workload} | {tool} | {results.median(workload, tool, 'wall'):.2f} |"
                     f" {results.spread(workload, tool, 'wall')} | {results.median(workload, tool, 'cpu'):.2f} |"
                     f" {results.spread(workload, tool, 'cpu')} | {results.median(workload, tool, 'rss_mib'):.0f} |"
                     f" {written} | {ratio_wall} | {ratio_cpu} |")
    lines += ["", "| workload | target | measured | spread | limit | |", "|---|---|---:|---:|---:|---|"]
    all_ok = True
    measured_workloads = {w for (w, _) in results.runs} | {w.split(" ")[0] for (w, _) in results.runs}
    for target in TARGETS:
        if target.workload not in measured_workloads:
            continue
        line, ok = target.line(results)
        lines.append(line)
        all_ok &= ok
    if results.notes:
        lines += ["", *(f"- {note}" for note in results.notes)]
    return "\n".join(lines), all_ok


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def viewer_ready(client: Any) -> None:
    """The bucket as a lab's viewer bucket is once --setup-viewer-access ran: public read and the viewer's CORS
    rule. Our run's viewer check then passes, as on the uploads it exists for (one round trip, no fixes)."""
    from uploader.s3.viewer import ViewerSettings
    from uploader.s3.viewer_access import merged_cors, merged_policy

    client.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(merged_policy({}, BUCKET, [""])))
    client.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": merged_cors([], ViewerSettings().origin)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", choices=WORKLOADS, help="run only this workload (repeatable)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cartload-bench",
                        help="datasets (kept) and server data (wiped) go here")
    parser.add_argument("--tools", type=Path, default=REPO / ".bench-tools" / "bin",
                        help="where aws and s5cmd are installed (make bench installs them there)")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the SeaweedFS started below is stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    selected = args.only or list(WORKLOADS)
    if "noop" in selected or "one-changed" in selected:  # they re-run what the first uploads filled
        selected = list(dict.fromkeys(["large", "small", *selected]))
    if "noop-15ms" in selected:
        selected = list(dict.fromkeys(["small-15ms", *selected]))
    for tool in ("aws", "s5cmd"):
        if not (args.tools / tool).exists():
            sys.exit(f"{args.tools / tool} is missing: run 'make bench', or pass --tools DIR")
    if not Path(TIME).exists():
        sys.exit(f"{TIME} is missing: apt-get install time (GNU time measures CPU and peak RSS)")
    if shutil.which("curl") is None and "zenodo" in selected:
        sys.exit("curl is missing (apt-get install curl)")

    data = prepare(args.workdir / "data")
    bench = Bench(args.workdir, args.tools, args.rounds)
    steps: dict[str, Callable[[Bench, dict[str, SyntheticDataset]], None]] = {
        "startup": startup, "first-request": first_request, "noop": rerun("noop"), "noop-15ms": rerun("noop-15ms"),
        "one-changed": rerun("one-changed"), "huge-file": huge_file, "resume": resume, "zenodo": zenodo,
        "shards": shards,
    }
    steps |= {name: first_upload(name) for name in WORKLOADS if split_workload(name)[0] in ("large", "small", "tiny")}
    server_dir = args.workdir / "seaweedfs"
    shutil.rmtree(server_dir, ignore_errors=True)
    # A first upload starts with a cold hash cache, as on a new dataset; re-runs reuse their round's cache.
    shutil.rmtree(args.workdir / "cache", ignore_errors=True)
    try:
        with SeaweedFS(server_dir) as server:
            bench.endpoint = server.endpoint_url
            bench.client = server.client()
            bench.server = server
            bench.client.create_bucket(Bucket=BUCKET)
            viewer_ready(bench.client)
            for workload in WORKLOADS:
                if workload in selected:
                    print(f"{workload}:", flush=True)
                    steps[workload](bench, data)
    finally:
        bench.stop_proxies()
        shutil.rmtree(server_dir, ignore_errors=True)
    RESUME_LOST.extend(bench.resume_lost)
    table, all_ok = report(bench.results, args.rounds)
    print("\n" + table)
    (args.workdir / "results.md").write_text(table + "\n")
    print(f"\n(also written to {args.workdir / 'results.md'})")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
