"""The retrieval service: a FastAPI app over one trained run (``fgr serve RUN_DIR``).

Endpoints::

    GET  /health   {"status": "ok"}
    GET  /info     run, track, model, dataset, attributes, index kind and size, limits
    POST /search   multipart form: image=<file>  [attributes=a,b]  [rerank=true]  [k=10]
                   -> {"results": [{"rank", "id", "path", "score"}], "attributes", "fusion",
                       "reranked", "timings_ms": {"read", "decode", "embed", "search", ["rerank"], "total"}}

``attributes`` (attribute-specific runs) is a comma-separated list, or the field repeated; several
attributes are fused by the exact sum of their cosines over the whole collection. ``rerank``
(fabric ``11`` runs) re-scores the stage-1 shortlist with the query-guided attention. ``path`` is
relative to the dataset's folder.

Bad requests get a 4xx JSON ``{"error": "<one line>"}`` and the server carries on: an upload over
the size limit (413, refused from its Content-Length before it is read, or while reading), an
empty body, data that is not an image or is truncated, an unknown or repeated attribute, too many
attributes, a missing field (400/422). The client only ever sends bytes: nothing it sends is used
as a file name on the server.
"""

import contextlib
import threading
import time
from typing import Iterator

from fgr_utils.errors import FgrError
from fgr_utils.results import RunRecord
from fgr_utils.search import Searcher, open_run

DEFAULT_MAX_UPLOAD = 10 * 2**20
#: Room for the multipart framing and the small form fields around the image.
_FORM_OVERHEAD = 64 * 1024


def create_app(searcher: Searcher, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD, max_attributes: int | None = None,
               max_k: int = 100):
    """The FastAPI app answering for ``searcher`` (``fastapi``, ``uvicorn``: the ``[serve]`` extra)."""
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="fgr retrieval service", version="1")
    lock = threading.Lock()  # one model, one query at a time: torch already uses every core per query
    limit_attrs = max_attributes or len(searcher.groups)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return error(400, "Content-Length is not a number")
            if int(length) > max_upload_bytes + _FORM_OVERHEAD:
                return error(413, f"upload of {int(length):,} bytes is over the limit of {max_upload_bytes:,} bytes: "
                                  f"send a smaller image")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error(422, f"{where or 'request'}: {first.get('msg', 'invalid')} "
                          f"(POST /search takes multipart fields image, attributes, rerank, k)")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/info")
    def info():
        return {**searcher.info(), "limits": {"max_upload_bytes": max_upload_bytes, "max_attributes": limit_attrs,
                                              "max_k": max_k}}

    @app.post("/search")
    async def search(image: UploadFile = File(...), attributes: list[str] = Form(default=[]),
                     rerank: bool = Form(default=False), k: int = Form(default=10)):
        t0 = time.perf_counter()
        data = await image.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            return error(413, f"upload is over the limit of {max_upload_bytes:,} bytes: send a smaller image")
        if not 1 <= k <= max_k:
            return error(400, f"k must lie between 1 and {max_k}, got {k}")
        names = [part for field in attributes for part in field.split(",")]
        times = {"read": (time.perf_counter() - t0) * 1e3}

        def answer():  # decoding and the model run in a worker thread: the event loop stays free (/health)
            t = time.perf_counter()
            img = searcher.decode(data)
            times["decode"] = (time.perf_counter() - t) * 1e3
            with lock:
                return searcher.search(img, groups, k, rerank=rerank)

        try:
            groups = searcher.check_groups(names, limit_attrs)
            if rerank and not searcher.trained.can_rerank:
                raise FgrError("this run cannot re-rank (serve an 11_fabric_rerank run): leave 'rerank' out")
            pos, scores, stage = await run_in_threadpool(answer)
        except FgrError as e:
            return error(400, str(e))
        times.update(stage)
        times["total"] = (time.perf_counter() - t0) * 1e3
        coll = searcher.collection
        return {"results": [{"rank": r + 1, "id": coll.ids[p], "path": coll.paths[p], "score": float(s)}
                            for r, (p, s) in enumerate(zip(pos.tolist(), scores.tolist()))],
                "attributes": groups if searcher.trained.attribute_specific else [],
                "fusion": "sum of cosine similarities over the whole collection" if len(groups) > 1 else "cosine",
                "reranked": bool(rerank), "timings_ms": {k: round(v, 3) for k, v in times.items()}}

    return app


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL (port 0: a free port)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise FgrError(f"the service did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(run_dir, *, host: str = "127.0.0.1", port: int = 8000, index_kind: str = "flat",
          max_upload_bytes: int = DEFAULT_MAX_UPLOAD, max_attributes: int | None = None, device: str = "cpu") -> None:
    """``fgr serve``: load the run, then answer until interrupted."""
    import uvicorn

    searcher = open_run(run_dir, device=device, index_kind=index_kind, progress=True)
    app = create_app(searcher, max_upload_bytes=max_upload_bytes, max_attributes=max_attributes)
    info = searcher.info()
    print(f"fgr serve: {info['run']} ({info['track']}, {info['model']}, {info['dataset']}): "
          f"{info['index']['size']} items, index {index_kind}, on http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level="info")


def main(args) -> int:
    """``fgr serve RUN`` (the parsed arguments of :mod:`fgr_utils.cli`)."""
    try:
        import fastapi, uvicorn  # noqa: F401,E401 - the [serve] extra
    except ImportError as e:
        raise FgrError(f"fgr serve needs the [serve] extra ({e.name} is missing): pip install -e '.[serve]'") from None
    if args.max_upload_mb <= 0:
        raise FgrError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    serve(RunRecord.locate(args.run_dir, args.profile), host=args.host, port=args.port, index_kind=args.index,
          max_upload_bytes=int(args.max_upload_mb * 2**20), max_attributes=args.max_attributes, device=args.device)
    return 0
