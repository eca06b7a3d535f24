"""``GET /metrics`` on its own port (``USERMGMT_METRICS_PORT``), summed over every worker of ``usermgmt serve``.

prometheus-client's multiprocess mode: ``prepare`` empties the shared folder and names it in
``PROMETHEUS_MULTIPROC_DIR`` before any worker starts (and before prometheus-client is imported: it reads the
variable then), each worker writes its values there, and ``start`` serves their sum from the supervising process
in a thread. Counters of a worker that died still count (a total never goes down); its live gauges (queue depth,
connections in use) are dropped at the next scrape, since a dead process holds no connection.

The port answers ``/metrics`` only (404 elsewhere), GET or HEAD, and is meant for the scraper's network only: it
listens on ``USERMGMT_METRICS_HOST`` (127.0.0.1 unless set).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def prepare(folder: Path) -> None:
    """Empty ``folder`` (a previous run's files would be counted again) and make it the workers' shared folder."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(mode=0o700, parents=True)
    os.environ[MULTIPROC_VARIABLE] = str(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log for the scraper's requests."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MetricsApp:
    """The WSGI application of the metrics port."""

    def __init__(self, folder: Path) -> None:
        from prometheus_client import CollectorRegistry, multiprocess

        self._folder = folder
        self._registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self._registry, path=str(folder))  # type: ignore[no-untyped-call]

    def drop_dead_workers(self) -> None:
        from prometheus_client import multiprocess

        pids = {int(m.group(1)) for p in self._folder.iterdir() if (m := _LIVE_GAUGE_FILE.fullmatch(p.name))}
        for pid in pids:
            if not _alive(pid):
                multiprocess.mark_process_dead(pid, path=str(self._folder))  # type: ignore[no-untyped-call]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not found: the metrics are at /metrics\n"]
        if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"}:
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET")])
            return [b"Method not allowed\n"]
        self.drop_dead_workers()
        body = generate_latest(self._registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]


@contextlib.contextmanager
def serving(host: str, port: int, folder: Path) -> Iterator[WSGIServer]:
    """Serve the metrics of ``folder`` on ``host``:``port`` in a daemon thread while the block runs. Raises:
    OSError (the port is taken)."""
    server = make_server(host, port, MetricsApp(folder), server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    logger.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
