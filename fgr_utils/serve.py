"""The retrieval service: a FastAPI app over one trained run (``fgr serve RUN_DIR``).

Endpoints::

    GET  /health   {"status": "ok"}
    GET  /info     run, track, model, dataset, attributes, index kind and size, limits
    POST /search   multipart form: image=<file>  [attributes=a,b]  [rerank=true]  [k=10]
                   -> {"results": [{"rank", "id", "path", "score"}], "attributes", "fusion",
                       "reranked", "timings_ms": {"read", "decode", "embed", "search", ["rerank"], "total"}}
    GET  /openapi.json   the schema of all three, built for the run being served

``attributes`` (attribute-specific runs) is a comma-separated list, or the field repeated; several
attributes are fused by the exact sum of their cosines over the whole collection. ``rerank``
(fabric ``11`` runs) re-scores the stage-1 shortlist with the query-guided attention. ``path`` is
relative to the dataset's folder.

Bad requests get a 4xx JSON ``{"error": "<one line>"}`` and the server carries on: an upload over
the size limit (413, refused from its Content-Length before it is read, or while reading), an
empty body, data that is not an image or is truncated, an unknown or repeated attribute, too many
attributes, a missing field (400/422). The client only ever sends bytes: nothing it sends is used
as a file name on the server.

The OpenAPI schema states what the run accepts (:func:`search_request_schema`): an attribute run
requires ``attributes`` (its own names, at most ``--max-attributes``), another run does not offer
it, and only a run that can re-rank offers ``rerank``. Every status it documents has a typed body;
the one 400 a schema cannot rule out is an upload whose bytes do not decode as an image.
"""

import contextlib
import functools
import threading
import time
from types import SimpleNamespace
from typing import Any, Iterator

from fgr_utils.errors import FgrError
from fgr_utils.results import RunRecord
from fgr_utils.search import Searcher, open_run

DEFAULT_MAX_UPLOAD = 10 * 2**20
#: Room for the multipart framing and the small form fields around the image.
_FORM_OVERHEAD = 64 * 1024
#: The fusion rules a /search answer names.
FUSIONS = ("cosine", "sum of cosine similarities over the whole collection")


@functools.lru_cache(maxsize=1)
def models() -> SimpleNamespace:
    """The pydantic models of the service's answers (built on first use: pydantic comes with the extra)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field
    from typing_extensions import NotRequired, TypedDict

    class ErrorBody(BaseModel):
        """Why the request was refused, in one line; the server carries on."""
        error: str = Field(min_length=1, pattern=r"^[^\r\n]+$", description="the reason, one line")

    class Health(BaseModel):
        status: Literal["ok"]

    class IndexInfo(BaseModel):
        kind: str = Field(description="the index kind searched (fgr serve --index)")
        size: int = Field(ge=0, description="items in the collection")
        dim: int = Field(ge=1, description="dimension of the embeddings")
        groups: int = Field(ge=1, description="indexes kept: one per attribute, else one")

    class Limits(BaseModel):
        max_upload_bytes: int = Field(ge=1)
        max_attributes: int = Field(ge=1, description="attributes one query may name")
        max_k: int = Field(ge=1, description="the largest k")

    class Info(BaseModel):
        """The run being served; further keys are the run's embedding settings (e.g. RPF's beta)."""
        model_config = ConfigDict(extra="allow")
        run: str
        notebook: str
        track: str
        model: str
        dataset: str
        attributes: list[str] = Field(description="the run's attributes; empty for a run without attributes")
        index: IndexInfo
        model_hash: str
        rerank: bool = Field(description="whether /search takes rerank=true")
        limits: Limits

    class Hit(BaseModel):
        rank: int = Field(ge=1)
        id: str
        path: str = Field(description="relative to the dataset's folder")
        score: float = Field(description="cosine, or the sum of the attributes' cosines")

    class Timings(TypedDict):
        read: float
        decode: float
        embed: float
        search: float
        rerank: NotRequired[float]
        total: float

    class SearchAnswer(BaseModel):
        results: list[Hit] = Field(description="best first, at most k")
        attributes: list[str] = Field(description="the attributes searched; empty for a run without attributes")
        fusion: Literal[FUSIONS]
        reranked: bool
        timings_ms: Timings = Field(description="milliseconds per stage; rerank only when re-ranked")

    return SimpleNamespace(ErrorBody=ErrorBody, Health=Health, Info=Info, SearchAnswer=SearchAnswer)


#: How a form field spells a boolean (as FastAPI reads it), in any case.
TRUE_WORDS = ("true", "1", "yes", "on", "t", "y")
FALSE_WORDS = ("false", "0", "no", "off", "f", "n")


def _spelled(words: tuple[str, ...]) -> dict[str, Any]:
    """The text spellings of a boolean form field, any case, as a JSON Schema string."""
    cased = ("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in w) for w in words)
    return {"type": "string", "pattern": f"^(?:{'|'.join(cased)})$"}


def search_request_schema(searcher: Searcher, *, max_upload_bytes: int, max_attributes: int, max_k: int
                          ) -> dict[str, Any]:
    """The multipart body ``POST /search`` takes from this run, as an OpenAPI request body.

    What the schema can state, the server checks the same way (a request outside it gets 400 or 422);
    what it cannot (whether the bytes decode as an image) is documented as the 400 answer.
    """
    t = searcher.trained
    props: dict[str, Any] = {
        # the size limit stays out of maxLength: fuzzers cannot make a schema-breaking file; 413 documents it
        "image": {"type": "string", "format": "binary", "minLength": 1,
                  "description": f"the query image's file bytes (any format Pillow decodes), at most "
                                 f"{max_upload_bytes:,} bytes (413 over it); bytes that do not decode as an image "
                                 f"get 400"},
    }
    required = ["image"]
    if t.attribute_specific:
        names = list(searcher.groups)
        props["attributes"] = {
            "type": "array", "items": {"type": "string", "enum": names}, "minItems": 1,
            "maxItems": min(max_attributes, len(names)), "uniqueItems": True,
            "description": f"the attributes to search under (the field repeated; one field holding the names "
                           f"joined by commas is read the same way), each once, at most {max_attributes}; "
                           f"several are fused by the sum of their cosines"}
        required.append("attributes")
    else:  # sent at all, even empty, it is refused: the schema allows no value
        props["attributes"] = {"type": "array", "items": {"type": "string"}, "maxItems": 0,
                               "description": f"this {t.track} run has no attributes: leave the field out"}
    if t.can_rerank:
        props["rerank"] = {"anyOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]},
                                     _spelled(TRUE_WORDS + FALSE_WORDS)], "default": False,
                           "description": "re-score the stage-1 shortlist with the query-guided attention: true or "
                                          "false (also 1/0, yes/no, on/off, t/f, y/n, in any case)"}
    else:
        props["rerank"] = {"anyOf": [{"type": "boolean", "enum": [False]}, {"type": "integer", "enum": [0]},
                                     _spelled(FALSE_WORDS)], "default": False,
                           "description": "this run cannot re-rank (an 11_fabric_rerank run can): false or left out"}
    props["k"] = {"type": "integer", "minimum": 1, "maximum": max_k, "default": 10,
                  "description": "how many results"}
    return {"required": True, "description": "The query, as multipart/form-data.",
            "content": {"multipart/form-data": {
                "schema": {"type": "object", "title": "SearchForm", "properties": props, "required": required},
                "encoding": {"image": {"contentType": "image/*"}}}}}


def create_app(searcher: Searcher, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD, max_attributes: int | None = None,
               max_k: int = 100):
    """The FastAPI app answering for ``searcher`` (``fastapi``, ``uvicorn``: the ``[serve]`` extra)."""
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    m = models()
    app = FastAPI(title="fgr retrieval service", version="1",
                  description=f"Retrieval over the run {searcher.run_dir.name} ({searcher.trained.track}, "
                              f"{searcher.trained.model_name}).")
    lock = threading.Lock()  # one model, one query at a time: torch already uses every core per query
    limit_attrs = max_attributes or len(searcher.groups)

    def err(description: str) -> dict[str, Any]:
        return {"model": m.ErrorBody, "description": description}

    # the middleware answers these for any path, before the route is reached
    framing = {400: err("the Content-Length header is not a number"),
               413: err(f"the body is over the limit ({max_upload_bytes:,} bytes of image)")}

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(message).split()) or "error"}, status_code=status, headers=headers)

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
                          f"(POST /search takes multipart fields {', '.join(form_fields)})")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):  # 404, 405, an unparsable form (400)
        return error(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.get("/health", response_model=m.Health, responses=framing, summary="Whether the service answers")
    def health():
        return {"status": "ok"}

    @app.get("/info", response_model=m.Info, responses=framing, summary="The run being served and the limits")
    def info():
        return {**searcher.info(), "limits": {"max_upload_bytes": max_upload_bytes, "max_attributes": limit_attrs,
                                              "max_k": max_k}}

    t = searcher.trained
    refused = ["the image's bytes do not decode as an image (the one refusal a schema cannot rule out)",
               "a value outside the schema: k out of range"]
    refused += (["no attribute", "an unknown, repeated or empty attribute name", "too many attributes"]
                if t.attribute_specific else ["attributes (this run has none)"])
    refused += [] if t.can_rerank else ["rerank=true (this run cannot re-rank)"]
    refused += ["a Content-Length that is not a number", "a form that cannot be parsed"]
    search_errors = {
        400: err("the query is refused: " + "; ".join(refused)),
        413: err(f"the image is over the limit of {max_upload_bytes:,} bytes"),
        422: err("a required field is missing, sent twice or empty, or has the wrong type (k not an integer, "
                 "rerank not a boolean, a body that is not multipart/form-data)"),
    }

    @app.post("/search", response_model=m.SearchAnswer, response_model_exclude_unset=True, responses=search_errors,
              summary="The collection items nearest to an uploaded image")
    async def search(request: Request, image: UploadFile = File(...), attributes: list[str] = Form(default=[]),
                     rerank: bool = Form(default=False), k: int = Form(default=10)):
        t0 = time.perf_counter()
        form = await request.form()  # already parsed: what FastAPI reads leniently, the schema does not allow
        for name, kind in (("image", "a file"), ("k", "an integer"), ("rerank", "a boolean")):
            sent = form.getlist(name)
            if len(sent) > 1:
                return error(422, f"{name}: sent {len(sent)} times: send it once")
            if sent == [""]:
                return error(422, f"{name}: an empty value is not {kind}: give one or leave the field out")
        data = await image.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            return error(413, f"upload is over the limit of {max_upload_bytes:,} bytes: send a smaller image")
        if not 1 <= k <= max_k:
            return error(400, f"k must lie between 1 and {max_k}, got {k}")
        names = [part.strip() for field in attributes for part in field.split(",")]
        if attributes and not searcher.trained.attribute_specific:  # even an empty one: the schema allows none
            return error(400, f"this {searcher.trained.track} run has no attributes: leave 'attributes' out")
        if searcher.trained.attribute_specific and any(names) and not all(names):  # "a,,b", "a,": as the schema
            return error(400, "an attribute name is empty: name each one, e.g. attributes=sleeve_length,collar_design")
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
                "fusion": FUSIONS[1] if len(groups) > 1 else FUSIONS[0],
                "reranked": bool(rerank), "timings_ms": {k: round(v, 3) for k, v in times.items()}}

    body = search_request_schema(searcher, max_upload_bytes=max_upload_bytes, max_attributes=limit_attrs, max_k=max_k)
    form_fields = list(body["content"]["multipart/form-data"]["schema"]["properties"])

    def openapi() -> dict[str, Any]:
        """FastAPI's schema with the run's own request body in place of the handler's generic one."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            operation = schema["paths"]["/search"]["post"]
            generic = operation["requestBody"]["content"]["multipart/form-data"]["schema"].get("$ref", "")
            operation["requestBody"] = body
            schema.get("components", {}).get("schemas", {}).pop(generic.rsplit("/", 1)[-1], None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
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
    serve(RunRecord.find(args.run_dir, args.profile), host=args.host, port=args.port, index_kind=args.index,
          max_upload_bytes=int(args.max_upload_mb * 2**20), max_attributes=args.max_attributes, device=args.device)
    return 0
