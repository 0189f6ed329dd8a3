"""A tiny threaded HTTP server on 127.0.0.1 for the download tests (no network needed).

It serves bytes from ``files`` (path -> bytes), honours ``Range: bytes=a-`` / ``bytes=a-b`` with
206 + Content-Range (416 when the start lies past the end), and has switches to misbehave:

* ``truncate[path] = n``: announce the full Content-Length but close the connection after n body bytes;
* ``ignore_range = True``: answer every request with the whole file (200);
* ``status[path] = code``: answer with that error code (404, 500, ...); unknown paths give 404.

Every request is recorded in ``requests`` as ``(method, path, headers)``.
"""
from __future__ import annotations

import io
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class FileServer:
    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.truncate: dict[str, int] = {}
        self.status: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> "FileServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_HEAD(self):
                server._answer(self, body=False)

            def do_GET(self):
                server._answer(self, body=True)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FileServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def range_requests(self, path: str) -> list[str]:
        """The Range headers received for ``path``."""
        path = "/" + path.lstrip("/")
        return [h["Range"] for _m, p, h in self.requests if p == path and "Range" in h]

    # -- answering --------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.requests.append((h.command, path, dict(h.headers.items())))
        key = path.lstrip("/")
        code = self.status.get(key)
        if code is None and key not in self.files:
            code = 404
        if code is not None:
            h.send_error(code)
            return
        data = self.files[key]
        total = len(data)
        start, end = 0, total - 1
        status = 200
        rng = h.headers.get("Range")
        if rng and not self.ignore_range:
            m = _RANGE.match(rng.strip())
            if m:
                start = int(m.group(1))
                end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
                if start >= total or start > end:
                    h.send_response(416)
                    h.send_header("Content-Range", f"bytes */{total}")
                    h.send_header("Content-Length", "0")
                    h.end_headers()
                    return
                status = 206
        payload = data[start:end + 1]
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(payload)))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        h.end_headers()
        if not body:
            return
        cut = self.truncate.get(key)
        if cut is not None and cut < len(payload):
            h.wfile.write(payload[:cut])
            h.wfile.flush()
            h.close_connection = True  # the client sees the connection end early
            return
        h.wfile.write(payload)


def make_zip(files: dict[str, bytes]) -> bytes:
    """A zip archive (in memory) holding ``files`` (name -> bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()
