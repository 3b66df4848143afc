"""A TCP proxy a test owns on one directed link between two nodes, to cut, black-hole, slow down
or make one-way exactly that link's traffic (issue 21's partition tests).

Standard library only (Python 3.11). The proxy runs its own asyncio event loop in a background
thread; every method is called from the test's thread and returns once the change is in force
(after ``cut()`` returns, every connection it closed is closed).

    from proxy import Proxy, TO_SERVER, TO_CLIENT

    p = Proxy(listen_port, "127.0.0.1", node_b_cluster_port)   # listening when it returns
    ...                        # node A is configured to reach node B at 127.0.0.1:listen_port
    p.cut()                    # close A->B's connections, refuse new ones (accept, then close)
    p.heal()                   # forward again; closed connections stay closed
    p.blackhole()              # keep connections, drop every byte both ways, accept new ones
    p.one_way(drop=TO_CLIENT)  # bytes reach B, B's answers are dropped
    p.delay(0.2)               # every chunk forwarded 0.2 s after it was read
    p.hold()                   # stop reading both ways: TCP buffers fill, senders block; heal()
                               # delivers everything, in order (a partition as TCP lives it)
    p.counters()               # bytes forwarded and dropped each way, connections
    p.close()

"Client" is the side that connects to the proxy, "server" the target. Dropping bytes is not
what a network partition does to TCP (TCP retransmits; see ``hold``): after ``heal()`` a
connection that lost bytes carries a stream with a gap, which a framed protocol must detect.

Each mode call replaces the previous mode; ``heal()`` is plain forwarding. Bounded: at most
``max_connections`` connections (64; more are accepted and closed at once, counted as refused),
reads of 64 KiB, and per connection and direction at most 16 chunks queued (then the reader
waits, so a slow or delayed direction pushes back on its sender instead of buffering).
"""
import asyncio
import threading
import time

TO_SERVER = "client_to_server"
TO_CLIENT = "server_to_client"
CHUNK = 64 * 1024
QUEUED_CHUNKS = 16
_EOF = object()


class _Mode:
    __slots__ = ("cut", "drop", "delay", "hold")

    def __init__(self, cut=False, drop=(), delay=0.0, hold=False):
        self.cut = cut
        self.drop = frozenset(drop)
        self.delay = float(delay)
        self.hold = hold

    def __repr__(self):
        if self.cut:
            return "cut"
        if self.hold:
            return "hold"
        if self.drop == {TO_SERVER, TO_CLIENT}:
            return "blackhole"
        if self.drop:
            return "one_way(drop=%s)" % next(iter(self.drop))
        if self.delay:
            return "delay(%s)" % self.delay
        return "forward"


class Proxy:
    def __init__(self, listen_port, target_host, target_port, listen_host="127.0.0.1",
                 max_connections=64, connect_timeout=5.0):
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._mode = _Mode()
        self._counts = dict(bytes_to_server=0, bytes_to_client=0, dropped_to_server=0,
                            dropped_to_client=0, connections=0, refused=0, failed_upstream=0)
        self._conns = set()
        self._loop = asyncio.new_event_loop()
        self._changed = None  # asyncio.Event, replaced at every mode change
        self._server = None
        started = threading.Event()
        failure = []

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start())
            except BaseException as e:  # reported to the constructor
                failure.append(e)
                started.set()
                return
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="proxy-%d" % listen_port, daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            self._loop.close()
            raise failure[0]
        if not started.is_set():
            raise RuntimeError("proxy on port %d did not start" % listen_port)

    # ---- the test's side -------------------------------------------------------------------

    def cut(self):
        """Close every current connection; accept new ones and close them at once."""
        self._set(_Mode(cut=True), close_all=True)

    def blackhole(self):
        """Keep connections open, drop every byte both ways; accept new connections."""
        self._set(_Mode(drop=(TO_SERVER, TO_CLIENT)))

    def one_way(self, drop):
        """Drop the bytes of one direction only: ``TO_SERVER`` (client->server) or ``TO_CLIENT``
        (server->client); the other direction forwards."""
        if drop not in (TO_SERVER, TO_CLIENT):
            raise ValueError("drop must be %r or %r, not %r" % (TO_SERVER, TO_CLIENT, drop))
        self._set(_Mode(drop=(drop,)))

    def delay(self, seconds):
        """Forward every chunk ``seconds`` after it was read (each direction, order kept)."""
        if seconds < 0:
            raise ValueError("a delay is not negative")
        self._set(_Mode(delay=seconds))

    def hold(self):
        """Stop moving bytes both ways without dropping any: what is sent waits in the
        proxy and the kernel's buffers (senders block once those fill) until ``heal()``."""
        self._set(_Mode(hold=True))

    def heal(self):
        """Forward again. Connections closed by ``cut()`` stay closed; new ones forward."""
        self._set(_Mode())

    @property
    def mode(self):
        return repr(self._mode)

    def counters(self):
        """Bytes forwarded and dropped each way, connections forwarded (``connections``), open
        now (``open``), and closed at once (``refused``: cut or over the limit)."""
        return self._call(self._snapshot())

    def close(self):
        """Stop listening, close every connection and stop the loop's thread."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            try:
                self._call(self._shutdown())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
        self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "Proxy(%s:%d -> %s:%d, %s)" % (self.listen_host, self.listen_port, self.target[0],
                                            self.target[1], self.mode)

    # ---- the loop's side -------------------------------------------------------------------

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _set(self, mode, close_all=False):
        async def apply():
            self._mode = mode
            old, self._changed = self._changed, asyncio.Event()
            old.set()
            if close_all:
                await self._close_connections()
        self._call(apply())

    async def _snapshot(self):
        c = dict(self._counts)
        c["open"] = len(self._conns)
        return c

    async def _start(self):
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.listen_port,
                                                  reuse_address=True)

    async def _shutdown(self):
        self._server.close()
        await self._close_connections()
        await self._server.wait_closed()
        for _ in range(3):  # let the accept callbacks' tasks end
            await asyncio.sleep(0)

    async def _close_connections(self):
        conns = list(self._conns)
        for c in conns:
            c.abort()
        for c in conns:
            await c.finished()

    async def _accept(self, reader, writer):
        if self._mode.cut or len(self._conns) >= self.max_connections:
            self._counts["refused"] += 1
            writer.transport.abort()
            return
        conn = _Connection(self, reader, writer)
        self._conns.add(conn)
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)

    async def _wait_change(self):
        await self._changed.wait()


class _Connection:
    """One client connection and its connection to the target: two pumps, each a reader and a
    writer joined by a bounded queue."""

    def __init__(self, proxy, reader, writer):
        self.p = proxy
        self.client = (reader, writer)
        self.server = None
        self.connecting = None
        self.tasks = []
        self.done = asyncio.Event()

    def abort(self):
        for _, w in filter(None, (self.client, self.server)):
            w.transport.abort()
        for t in filter(None, [self.connecting] + self.tasks):
            t.cancel()

    async def finished(self):
        await self.done.wait()

    async def run(self):
        p = self.p
        try:
            self.connecting = asyncio.ensure_future(
                asyncio.wait_for(asyncio.open_connection(*p.target), p.connect_timeout))
            try:
                self.server = await self.connecting
            except asyncio.CancelledError:
                return  # cut while connecting
            except (OSError, asyncio.TimeoutError):
                p._counts["failed_upstream"] += 1
                return
            p._counts["connections"] += 1
            for direction, src, dst in ((TO_SERVER, self.client[0], self.server[1]),
                                        (TO_CLIENT, self.server[0], self.client[1])):
                q = asyncio.Queue(QUEUED_CHUNKS)
                self.tasks.append(asyncio.create_task(self._read(direction, src, q)))
                self.tasks.append(asyncio.create_task(self._write(direction, dst, q)))
            await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            for _, w in filter(None, (self.client, self.server)):
                w.transport.abort()
            self.done.set()

    async def _read(self, direction, src, q):
        p = self.p
        try:
            while True:
                while p._mode.hold:
                    await p._wait_change()
                data = await src.read(CHUNK)
                if not data:
                    await q.put((0.0, _EOF))
                    return
                await q.put((time.monotonic() + p._mode.delay, data))
        except (OSError, asyncio.IncompleteReadError):
            self.abort()

    async def _write(self, direction, dst, q):
        p = self.p
        sent, dropped = ("bytes_to_server", "dropped_to_server") if direction == TO_SERVER \
            else ("bytes_to_client", "dropped_to_client")
        try:
            while True:
                due, data = await q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                while p._mode.hold:
                    await p._wait_change()
                if data is _EOF:
                    # A dropped direction loses its FIN too, until the link heals.
                    while direction in p._mode.drop:
                        await p._wait_change()
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                if direction in p._mode.drop:
                    p._counts[dropped] += len(data)
                    continue
                dst.write(data)
                await dst.drain()
                p._counts[sent] += len(data)
        except OSError:
            self.abort()
