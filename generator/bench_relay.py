"""`python -m generator bench-relay`: how many events/s the relay takes in and delivers.

A real relay process (pinned to one core where the machine has two or more) against a fast local fake of Pendo's
Track Events API (a raw asyncio HTTP/1.1 server in another process, pinned with the senders to another core).
Intake is measured with delivery paused (the fake answers 429 with a long Retry-After, so the relay stops sending
to it), so the figure is what intake alone sustains; every acknowledged event is synced first (group commit).
Delivery is measured from a backlog written into the outbox before the relay starts, with the rate limit lifted
(the relay's own ceiling), and once at the default --max-rate. The outage run keeps 1,000 events waiting while the
fake answers 500 for 20 s: it reports the relay's requests/s after the first 10 s (its brake), how soon after
recovery delivery starts again, and how long the backlog then takes to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from generator.errors import GeneratorError
from generator.paths import PROJECT_ROOT
from generator.relay.outbox import Delivered, NewEvent, SqliteOutbox

SHARED_SECRET = "bench-shared-secret"
AUTHORIZATION = "Basic YmVuY2gtc2hhcmVkLXNlY3JldDo="  # bench-shared-secret:
INTAKE_SECONDS = 8.0
# Answers the fake gives: 200, 429 with a Retry-After that pauses the relay's delivery, or 500 (an outage).
OK, THROTTLE, FAIL = 0, 1, 2
# Far above what one relay can send: delivery figures measure the relay, not its rate limit.
NO_RATE_LIMIT = "1000000"
OUTAGE_SECONDS, OUTAGE_SETTLING_SECONDS, OUTAGE_BACKLOG = 20.0, 10.0, 1_000


class BenchRelayError(GeneratorError):
    """The relay benchmark could not run."""


@dataclass
class Figures:
    """What one run measured."""

    results: dict[str, float]
    machine: str

    def table(self) -> str:
        """One line per figure."""
        return "\n".join(f"  {name:<48} {value:>12,.0f}" for name, value in self.results.items())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pin(cores: set[int]) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cores)


def _fake_pendo(
    port: int, mode: Synchronized[int], delivered: Synchronized[int], requests: Synchronized[int], cores: set[int]
) -> None:
    _pin(cores)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                with requests.get_lock():
                    requests.value += 1
                if mode.value == FAIL:
                    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                elif mode.value == THROTTLE:
                    writer.write(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 60\r\nContent-Length: 0\r\n\r\n")
                else:
                    with delivered.get_lock():
                        delivered.value += 1
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


class _Bench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = workdir / "outbox.sqlite3"
        (workdir / "pendo.toml").write_text('[pendo]\napi_key = "bench"\n')
        self.cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        ordered = sorted(self.cores)
        self.relay_cores = {ordered[0]} if len(ordered) > 1 else set(ordered)
        self.other_cores = set(ordered[1:]) or set(ordered)
        self.mode: Synchronized[int] = multiprocessing.Value("i", OK)
        self.delivered: Synchronized[int] = multiprocessing.Value("q", 0)
        self.requests: Synchronized[int] = multiprocessing.Value("q", 0)
        self.fake_port = _free_port()
        self.relay_port = _free_port()
        self.fake = multiprocessing.Process(
            target=_fake_pendo,
            args=(self.fake_port, self.mode, self.delivered, self.requests, self.other_cores),
            daemon=True,
        )
        self.relay: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def running_relay(
        self, db: str | None = None, *, pin: bool = True, max_rate: str = NO_RATE_LIMIT
    ) -> Iterator[None]:
        env = {**os.environ, "PENDO_TRACK_EVENT_SECRET": "bench", "RELAY_SHARED_SECRET": SHARED_SECRET}
        command = [sys.executable, "-m", "generator", "relay", "--config", str(self.workdir / "pendo.toml")]
        if db is not None:  # several relays may run at once, each on its own port
            self.relay_port = _free_port()
        command += ["--port", str(self.relay_port), "--db", db or str(self.db), "--concurrency", "8"]
        command += ["--max-rate", max_rate]
        command += ["--pendo-url", f"http://127.0.0.1:{self.fake_port}/data/track"]
        log = (self.workdir / "relay.log").open("ab")
        self.relay = relay = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log)
        if pin:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(relay.pid, self.relay_cores)
        try:
            self._wait_until_up()
            yield
        finally:
            relay.send_signal(signal.SIGTERM)
            try:
                relay.wait(timeout=60)
            except subprocess.TimeoutExpired:
                relay.kill()
            log.close()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.relay is not None and self.relay.poll() is not None:
                raise BenchRelayError(f"the relay exited; see {self.workdir / 'relay.log'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.relay_port), timeout=1):
                return
            time.sleep(0.1)
        raise BenchRelayError("the relay did not start within 2 minutes")

    def reset_outbox(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.db}{suffix}").unlink()

    def prefill(self, count: int) -> None:
        self.reset_outbox()
        outbox = SqliteOutbox(self.db)
        now_ms = int(time.time() * 1000)
        chunk = 20_000
        for start in range(0, count, chunk):
            events = [
                NewEvent(f"bench-{index}", "track", _pendo_body(index, now_ms), now_ms)
                for index in range(start, min(start + chunk, count))
            ]
            outbox.add_many(events)
        outbox.close()


def _pendo_body(index: int, now_ms: int) -> str:
    return (
        f'{{"type":"track","event":"Bench Event","visitorId":"user-{index % 1000}","timestamp":{now_ms},'
        f'"properties":{{"i":{index},"plan":"pro"}},"context":{{"ip":"203.0.113.9"}}}}'
    )


def _segment_event(now_iso: str) -> str:
    return (
        f'{{"type":"track","event":"Bench Event","messageId":"{uuid.uuid4()}","userId":"user-1",'
        f'"timestamp":"{now_iso}","properties":{{"plan":"pro","amount":12.5}},'
        f'"context":{{"ip":"203.0.113.9","page":{{"url":"https://x.example/p"}}}}}}'
    )


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line[15:]) for line in lines if line[:15].lower() == b"content-length:"), 0)
    return status, await reader.readexactly(length)


async def _send_for(port: int, clients: int, per_request: int, seconds: float) -> tuple[int, int]:
    """Keep-alive clients posting events for seconds; (events acknowledged with 200, requests refused)."""
    now_iso = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    path = "/v1/batch" if per_request > 1 else "/v1/track"
    deadline = time.monotonic() + seconds
    accepted = refused = 0

    async def client() -> None:
        nonlocal accepted, refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            events = [_segment_event(now_iso) for _ in range(per_request)]
            body = ('{"batch":[' + ",".join(events) + "]}" if per_request > 1 else events[0]).encode()
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {AUTHORIZATION}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status, _ = await _response(reader)
            if status == 200:
                accepted += per_request
            else:
                refused += 1
        writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return accepted, refused


def _machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = os.cpu_count() or 0
    return f"{cores} cores ({cpu}), Python {sys.version.split()[0]}, SQLite {_sqlite_version()}"


def _sqlite_version() -> str:
    import sqlite3  # noqa: PLC0415

    return sqlite3.sqlite_version


def measure(backlog: int) -> Figures:
    """Run every measurement; backlog is the largest waiting backlog to deliver from."""
    results: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    bench = _Bench(workdir)
    _pin(bench.other_cores)
    bench.fake.start()
    try:
        bench.mode.value = THROTTLE
        with bench.running_relay():
            # One event first, so the relay has seen the 429 and paused delivery before timing starts.
            asyncio.run(_send_for(bench.relay_port, 1, 1, 0.5))
            time.sleep(1)
            for name, clients, size in [
                ("intake, batches of 100, 4 clients (events/s)", 4, 100),
                ("intake, single events, 16 clients (events/s)", 16, 1),
                ("intake, single events, 1 client (events/s)", 1, 1),
            ]:
                accepted, refused = asyncio.run(_send_for(bench.relay_port, clients, size, INTAKE_SECONDS))
                if refused:
                    raise BenchRelayError(f"{name}: {refused} requests refused")
                results[name] = accepted / INTAKE_SECONDS
                print(f"  {name:<48} {results[name]:>12,.0f}", flush=True)
        bench.mode.value = OK
        for count in sorted({1_000, 100_000, backlog}):
            results |= _deliver_backlog(bench, count)
        results |= _deliver_backlog(bench, 1_000, max_rate="50")
        results |= _outage(bench)
    finally:
        bench.fake.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return Figures(results, _machine())


def _deliver_backlog(bench: _Bench, count: int, max_rate: str = NO_RATE_LIMIT) -> dict[str, float]:
    started = time.monotonic()
    bench.prefill(count)
    print(f"  (wrote a backlog of {count:,} in {time.monotonic() - started:.0f}s)", flush=True)
    bench.delivered.value = 0
    results: dict[str, float] = {}
    # The first 30 s of a backlog too big to drain in a bench run give its rate; smaller ones drain completely.
    window = 30.0 if count > 200_000 else 600.0
    with bench.running_relay(max_rate=max_rate):
        start = time.monotonic()
        while time.monotonic() - start < window and bench.delivered.value < count:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        delivered = bench.delivered.value
    limited = "" if max_rate == NO_RATE_LIMIT else f", --max-rate {max_rate}"
    name = f"delivery with {count:,} waiting{limited} (events/s)"
    results[name] = delivered / elapsed
    print(f"  {name:<48} {results[name]:>12,.0f}", flush=True)
    if delivered >= count:
        drain = f"drain of {count:,} waiting{limited} (seconds)"
        results[drain] = elapsed
        print(f"  {drain:<48} {elapsed:>12,.1f}", flush=True)
    return results


def _outage(bench: _Bench) -> dict[str, float]:
    """A 500 outage with a backlog: the relay's request rate once braked, then how soon and fast it recovers."""
    bench.prefill(OUTAGE_BACKLOG)
    bench.mode.value = FAIL
    bench.delivered.value = 0
    bench.requests.value = 0
    results: dict[str, float] = {}
    with bench.running_relay(max_rate="50"):
        time.sleep(OUTAGE_SETTLING_SECONDS)
        counted_from, before = time.monotonic(), bench.requests.value
        time.sleep(OUTAGE_SECONDS - OUTAGE_SETTLING_SECONDS)
        rate = (bench.requests.value - before) / (time.monotonic() - counted_from)
        results["outage (HTTP 500): requests/s after the first 10 s"] = rate
        results["outage (HTTP 500): requests in all 20 s"] = bench.requests.value
        bench.mode.value = OK
        recovered = time.monotonic()
        first = drained = None
        while time.monotonic() - recovered < 120 and bench.delivered.value < OUTAGE_BACKLOG:
            if first is None and bench.delivered.value:
                first = time.monotonic() - recovered
            time.sleep(0.01)
        if bench.delivered.value >= OUTAGE_BACKLOG:
            drained = time.monotonic() - recovered
    results["outage: seconds from recovery to the first delivery"] = first if first is not None else float("nan")
    results["outage: seconds from recovery to 1,000 drained (--max-rate 50)"] = (
        drained if drained is not None else float("nan")
    )
    for name in list(results)[-4:]:
        print(f"  {name:<48} {results[name]:>12,.2f}", flush=True)
    return results


def measure_shared(url: str, backlog: int, relay_counts: Sequence[int] = (1, 2, 3)) -> dict[str, float]:
    """Delivery from one PostgreSQL outbox by 1, 2 and 3 relays at once (unpinned: they share the machine)."""
    from generator.relay.pg_outbox import PostgresOutbox  # noqa: PLC0415  (psycopg is optional)

    results: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-pg-"))
    bench = _Bench(workdir)
    bench.fake.start()
    try:
        for count in relay_counts:
            outbox = PostgresOutbox(url)
            outbox.empty_for_benchmark()
            bench.delivered.value = 0
            with contextlib.ExitStack() as relays:
                for _ in range(count):
                    relays.enter_context(bench.running_relay(db=url, pin=False))
                # All at once (one transaction), so every relay is up before the first event is due.
                now_ms = int(time.time() * 1000)
                outbox.add_many(
                    [
                        NewEvent(f"bench-{index}", "track", _pendo_body(index, now_ms), now_ms)
                        for index in range(backlog)
                    ]
                )
                outbox.close()
                start = time.monotonic()
                while time.monotonic() - start < 600 and bench.delivered.value < backlog:
                    time.sleep(0.05)
                elapsed = time.monotonic() - start
            name = f"delivery, PostgreSQL, {count} relay{'s' if count > 1 else ''} (events/s)"
            results[name] = bench.delivered.value / elapsed
            print(f"  {name:<48} {results[name]:>12,.0f}", flush=True)
        for count in relay_counts:
            # The outbox's own ceiling: claims and settles with no HTTP, one connection set per would-be relay.
            name = f"claim+settle, PostgreSQL, {count} relay{'s' if count > 1 else ''} (events/s)"
            results[name] = _claim_and_settle(url, backlog, count)
            print(f"  {name:<48} {results[name]:>12,.0f}", flush=True)
    finally:
        bench.fake.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _claim_and_settle(url: str, backlog: int, count: int) -> float:
    from generator.relay.pg_outbox import PostgresOutbox  # noqa: PLC0415  (psycopg is optional)

    outboxes = [PostgresOutbox(url) for _ in range(count)]
    try:
        outboxes[0].empty_for_benchmark()
        now_ms = int(time.time() * 1000)
        outboxes[0].add_many(
            [NewEvent(f"bench-{index}", "track", _pendo_body(index, now_ms), now_ms) for index in range(backlog)]
        )

        def drain(outbox: PostgresOutbox) -> None:
            while batch := outbox.claim("track", 64, 300):
                outbox.settle([Delivered(item.message_id) for item in batch])

        workers = [threading.Thread(target=drain, args=(outbox,)) for outbox in outboxes]
        start = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return backlog / (time.monotonic() - start)
    finally:
        for outbox in outboxes:
            outbox.close()


def run(json_path: Path, backlog: int = 1_000_000, postgres: str | None = None, shared_backlog: int = 50_000) -> int:
    """Print the figures and write them as JSON; with postgres (a URL), delivery by several relays too."""
    print("relay throughput (the relay on one core, the senders and the fake Pendo on the other):", flush=True)
    figures = measure(backlog)
    if postgres:
        print(f"{shared_backlog:,} events waiting in PostgreSQL, relays unpinned:", flush=True)
        figures.results |= measure_shared(postgres, shared_backlog)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"machine": figures.machine, "results": figures.results}
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"machine: {figures.machine}\nwrote {json_path}")
    return 0
