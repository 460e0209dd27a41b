"""A TCP proxy on 127.0.0.1 that behaves like a real network between the uploader and a local server.

It delays each direction by a one-way latency (as a WAN does; the TCP
handshake itself is not delayed, which flatters tools that open a new
connection per request), and on request injects the faults a fault campaign
needs: connections reset after some bytes, a black hole (accepts, never
answers), stalls, refused connections (an outage), and canned HTTP error
answers.

    python -m tests.proxy --upstream 127.0.0.1:8333 --delay-ms 15   (prints its own address)

In tests: `with Proxy(upstream_port, delay=0.015) as proxy: ... proxy.port ...`, and
`proxy.set(mode=...)` to change its behaviour while a run goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CHUNK = 256 * 1024


@dataclass
class Behaviour:
    """What the proxy does to new and running connections (changeable at any time)."""

    delay: float = 0.0  # seconds added to every chunk, each direction
    bandwidth: float = 0.0  # bytes per second per connection and direction (0: unlimited)
    mode: str = "pass"  # pass | refuse | blackhole | stall | reset | http-error
    reset_after: int = 0  # "reset": bytes forwarded upstream on a connection before it is reset
    http_status: int = 503  # "http-error": the status of the canned answer
    connections: int = 0  # how many connections have been accepted
    requests_seen: list[int] = field(default_factory=list)  # bytes sent upstream, per closed connection
    outage_on: bytes = b""  # the first request holding these bytes begins an outage (see Proxy.outage_on)
    outage_seconds: float = 0.0
    outages: int = 0  # how many outages began
    deny_on: bytes = b""  # requests holding these bytes are answered 403 AccessDenied, never forwarded
    hold_answer_on: bytes = b""  # a request holding these bytes goes through; its answer is held back
    held: int = 0  # how many answers are held back
    first_connection_at: float = 0.0  # time.time() of the first connection accepted (0: none yet)
    # A store's refusal: a new connection whose first request's head matches is answered (status, S3 error
    # document) after its body is read, and closed, as a store answers what it refuses.
    refuse_when: Callable[[bytes], bool] | None = None
    refusal: tuple[int, bytes] = (403, b"")


class Proxy:
    """The proxy, run in a thread of its own with an asyncio loop."""

    def __init__(self, upstream_port: int, *, delay: float = 0.0, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.behaviour = Behaviour(delay=delay)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> Proxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, **changes: object) -> None:
        """Change the behaviour for what comes next (and for stalls/black holes, for what is running)."""
        for name, value in changes.items():
            setattr(self.behaviour, name, value)

    def outage_on(self, pattern: bytes, seconds: float) -> None:
        """When a request holding `pattern` comes (once), cut it and every connection, and refuse new ones for
        `seconds`: a server that goes away at that point of a run and comes back on the same port."""
        self.set(outage_on=pattern, outage_seconds=seconds)

    def _begin_outage(self) -> None:
        behaviour = self.behaviour
        behaviour.outage_on, behaviour.mode = b"", "refuse"
        behaviour.outages += 1
        self.cut_all()
        self._loop.call_later(behaviour.outage_seconds, lambda: setattr(behaviour, "mode", "pass"))

    def cut_all(self) -> None:
        """Reset every open connection now."""
        def cut() -> None:
            for writer in list(self._writers):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._loop.call_soon_threadsafe(cut)

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self.cut_all()

        async def wind_down() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(wind_down(), self._loop)
        self._thread.join(timeout=5)

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside the loop -------------------------------------------------------------------

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        behaviour = self.behaviour
        behaviour.connections += 1
        behaviour.first_connection_at = behaviour.first_connection_at or time.time()
        self._writers.add(client_writer)
        try:
            if behaviour.mode == "refuse":
                client_writer.transport.abort()
                return
            if behaviour.mode == "blackhole":
                await _drain_forever(client_reader)
                return
            if behaviour.mode == "http-error":
                await _answer_with_error(client_reader, client_writer, behaviour.http_status)
                return
            head = b""
            if behaviour.refuse_when is not None:
                head = await client_reader.readuntil(b"\r\n\r\n")
                if behaviour.refuse_when(head):
                    await _refuse(client_reader, client_writer, head, *behaviour.refusal)
                    return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(upstream_writer)
            upstream_writer.write(head)
            sent, held = [0], [False]
            await asyncio.gather(
                self._pump(client_reader, upstream_writer, sent, upstream=True, answer=client_writer, held=held),
                self._pump(upstream_reader, client_writer, [0], upstream=False, held=held),
                return_exceptions=True)
            behaviour.requests_seen.append(sent[0])
        finally:
            for writer in (client_writer,):
                self._writers.discard(writer)
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: list[int],
                    upstream: bool, answer: asyncio.StreamWriter | None = None,
                    held: list[bool] | None = None) -> None:
        """Forward one direction; every chunk arrives `delay` seconds after it left, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.ensure_future(self._deliver(queue, writer))
        try:
            while True:
                data = await reader.read(CHUNK)
                behaviour = self.behaviour
                if answer is not None and behaviour.deny_on and behaviour.deny_on in data:
                    await _answer_denied(answer)
                    writer.transport.abort()
                    raise ConnectionResetError("denied by the proxy")
                if upstream and behaviour.outage_on and behaviour.outage_on in data:
                    self._begin_outage()
                    writer.transport.abort()
                    raise ConnectionResetError("an outage began")
                if upstream and held is not None and behaviour.hold_answer_on and behaviour.hold_answer_on in data:
                    held[0] = True
                    behaviour.held += 1
                    behaviour.hold_answer_on = b""  # once: the request sent again is answered
                if not upstream and held and held[0]:
                    await asyncio.sleep(3600)  # the answer never comes (the client gives up, or the test ends)
                if behaviour.mode == "stall":
                    await _wait_while_stalled(self)
                if upstream and behaviour.mode == "reset" and counter[0] + len(data) > behaviour.reset_after:
                    writer.transport.abort()
                    raise ConnectionResetError("reset by the proxy")
                counter[0] += len(data)
                if behaviour.bandwidth and data:
                    await asyncio.sleep(len(data) / behaviour.bandwidth)
                await queue.put((time.monotonic() + behaviour.delay, data))
                if not data:
                    break
            await deliver
        finally:
            deliver.cancel()

    @staticmethod
    async def _deliver(queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter) -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(Exception):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()


async def _drain_forever(reader: asyncio.StreamReader) -> None:
    while await reader.read(CHUNK):
        pass
    await asyncio.sleep(3600)


async def _wait_while_stalled(proxy: Proxy) -> None:
    while proxy.behaviour.mode == "stall":
        await asyncio.sleep(0.05)


async def _answer_denied(writer: asyncio.StreamWriter) -> None:
    """An S3 AccessDenied answer, as a store gives one to an identity without that permission."""
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
            b"<Message>Access Denied</Message></Error>")
    writer.write(f"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(Exception):
        await writer.drain()
    writer.close()


async def _answer_with_error(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int) -> None:
    """Read one request's head and answer it with an S3-style error, then close."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")
    reason = {500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(Exception):
        await writer.drain()


async def _refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, status: int,
                  body: bytes) -> None:
    """Read the request's body, then answer it with `status` and `body`, and close."""
    length = next((int(line.split(b":", 1)[1]) for line in head.lower().split(b"\r\n")
                   if line.startswith(b"content-length:")), 0)
    with contextlib.suppress(Exception):
        await reader.readexactly(length)
    writer.write(f"HTTP/1.1 {status} Refused\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(Exception):
        await writer.drain()


class RecordingTunnel:
    """A plain TCP pass-through (threads, no delay) keeping what the client sent, connection by connection."""

    def __init__(self, target_port: int) -> None:
        self.connections: list[bytearray] = []
        recorder = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sent = bytearray()
                recorder.connections.append(sent)
                upstream = socket.create_connection(("127.0.0.1", target_port))
                back = threading.Thread(target=pipe, args=(upstream, self.request, None), daemon=True)
                back.start()
                pipe(self.request, upstream, sent)
                back.join(timeout=30)
                upstream.close()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def sent(self) -> bytes:
        """Everything the client sent, connections one after another."""
        return b"".join(self.connections)


def pipe(source: socket.socket, target: socket.socket, record: bytearray | None) -> None:
    while data := source.recv(65536):
        if record is not None:
            record.extend(data)
        target.sendall(data)
    target.shutdown(socket.SHUT_WR)


def main() -> None:
    parser = argparse.ArgumentParser(description="A delaying, fault-injecting TCP proxy on 127.0.0.1")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay added to each direction")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    proxy = Proxy(int(port), delay=args.delay_ms / 1000, upstream_host=host).start()
    print(proxy.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    proxy.stop()


if __name__ == "__main__":
    main()
