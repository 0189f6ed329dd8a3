"""The retrieval service and the run-based index benchmark, on real smoke runs served by uvicorn on 127.0.0.1."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import read_json, synth_in
from fgr_utils import bench, cli, search
from fgr_utils.serve import create_app, running


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trained smoke runs (asfr asen_v2; fabric stage 1 and 2) in a module-wide data/runs folder."""
    base = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FGR_DATA_DIR", str(base / "data"))
        mp.setenv("FGR_RUNS_DIR", str(base / "runs"))
        for var in ("FGR_RUN_DIR", "FGR_NOTEBOOK", "FGR_PROFILE", "FGR_RUN_NAME", "FGR_FINGERPRINT"):
            mp.delenv(var, raising=False)
        for name in ("asfr-garments", "sim-fabrics"):
            synth_in(base / "data", name)
        for args in (["30_asfr_train", "--variant", "asen_v2"], ["10_fabric_global"], ["11_fabric_rerank"]):
            assert cli.main(["run", *args, "--profile", "smoke", "--no-progress"]) == 0
        smoke = base / "runs" / "smoke"
        yield {"asfr": smoke / "30_asfr_train-asen_v2", "fabric": smoke / "11_fabric_rerank", "base": base, "mp": mp}


@pytest.fixture(scope="module")
def asfr(runs):
    s = search.open_run(runs["asfr"])
    with running(create_app(s, max_upload_bytes=200_000, max_attributes=3)) as url:
        yield s, url


def _image(s: search.Searcher, i: int = 0) -> bytes:
    return (s.trained.root / s.collection.paths[i]).read_bytes()


def _post(url: str, data: bytes, **form) -> httpx.Response:
    return httpx.post(f"{url}/search", files={"image": ("query.png", data)}, data=form, timeout=60)


def test_health_and_info_describe_the_run(asfr):
    s, url = asfr
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    info = httpx.get(f"{url}/info").json()
    assert info["track"] == "asfr" and info["model"] == "asen_v2" and info["dataset"] == "asfr-garments"
    assert info["attributes"] == s.trained.data.names and len(info["attributes"]) == 8
    assert info["index"] == {"kind": "flat", "size": len(s.collection.ids), "dim": 32, "groups": 8}
    assert info["limits"]["max_upload_bytes"] == 200_000 and info["limits"]["max_attributes"] == 3


def test_a_catalogue_image_finds_itself_first_under_its_attribute(asfr):
    s, url = asfr
    r = _post(url, _image(s, 3), attributes="sleeve_length", k="5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["rank"] for x in body["results"]] == [1, 2, 3, 4, 5]
    top = body["results"][0]
    assert top["id"] == s.collection.ids[3] and top["score"] == pytest.approx(1.0, abs=1e-3)
    assert not os.path.isabs(top["path"]) and (s.trained.root / top["path"]).is_file()
    assert {"read", "decode", "embed", "search", "total"} <= set(body["timings_ms"])
    assert body["attributes"] == ["sleeve_length"] and body["fusion"] == "cosine"


def test_several_attributes_fuse_exact_cosine_sums_over_the_whole_collection(asfr):
    s, url = asfr
    names = ["sleeve_length", "collar_design", "pattern_design"]
    body = _post(url, _image(s, 7), attributes=",".join(names), k="10").json()
    img = s.decode(_image(s, 7))
    q = s.trained.embed(img, names)
    total = sum(s.collection.vectors[n] @ q[i] for i, n in enumerate(names))
    expected = np.argsort(-total, kind="stable")[:10]
    assert [x["id"] for x in body["results"]] == [s.collection.ids[i] for i in expected]
    assert [x["score"] for x in body["results"]] == pytest.approx(total[expected].tolist(), abs=1e-5)
    assert body["results"][0]["score"] == pytest.approx(3.0, abs=3e-3)
    # the repeated-field form means the same
    again = httpx.post(f"{url}/search", files={"image": ("q", _image(s, 7))},
                       data={"attributes": names, "k": "10"}, timeout=60).json()
    assert again["results"] == body["results"]


@pytest.mark.parametrize("case, status, words", [
    ("not an image", 400, "not an image"),
    ("truncated", 400, "truncated"),
    ("empty", 400, "empty upload"),
    ("unknown attribute", 400, "unknown attribute 'colour'"),
    ("repeated attribute", 400, "named twice"),
    ("too many attributes", 400, "too many attributes (4)"),
    ("no attribute", 400, "at least one attribute"),
    ("too large", 413, "over the limit"),
    ("bad k", 400, "k must lie between"),
    ("rerank unsupported", 400, "cannot re-rank"),
])
def test_bad_requests_get_a_4xx_json_reason_and_the_server_stays_up(asfr, case, status, words):
    s, url = asfr
    png = _image(s)
    data, form = png, {"attributes": "sleeve_length"}
    if case == "not an image":
        data = b"%PDF-1.4 this is no picture" * 10
    elif case == "truncated":
        data = png[: len(png) // 2]
    elif case == "empty":
        data = b""
    elif case == "unknown attribute":
        form = {"attributes": "sleeve_length,colour"}
    elif case == "repeated attribute":
        form = {"attributes": "sleeve_length,sleeve_length"}
    elif case == "too many attributes":
        form = {"attributes": ",".join(s.trained.data.names[:4])}
    elif case == "no attribute":
        form = {}
    elif case == "too large":
        data = os.urandom(400_000)
    elif case == "bad k":
        form = {**form, "k": "0"}
    elif case == "rerank unsupported":
        form = {**form, "rerank": "true"}
    r = _post(url, data, **form)
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and "\n" not in r.json()["error"]
    assert httpx.get(f"{url}/health").status_code == 200


def test_an_upload_over_the_limit_is_refused_while_streaming_without_content_length(asfr):
    s, url = asfr

    def chunks():
        boundary = b"--fgrboundary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="image"; filename="q.png"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 10_000
        yield b"\r\n--fgrboundary--\r\n"

    r = httpx.post(f"{url}/search", content=chunks(), timeout=60,
                   headers={"Content-Type": "multipart/form-data; boundary=fgrboundary"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]


def test_missing_fields_and_client_file_names_are_never_used_as_server_paths(asfr):
    s, url = asfr
    r = httpx.post(f"{url}/search", data={"attributes": "sleeve_length"}, timeout=60)
    assert r.status_code == 422 and "image" in r.json()["error"]
    # a path as the upload's name, or as an attribute, is only ever a name
    r = httpx.post(f"{url}/search", files={"image": ("../../../etc/passwd", _image(s))},
                   data={"attributes": "sleeve_length"}, timeout=60)
    assert r.status_code == 200
    r = _post(url, _image(s), attributes="/etc/passwd")
    assert r.status_code == 400 and "unknown attribute" in r.json()["error"]


def test_fabric_runs_rerank_the_shortlist_on_request(runs):
    s = search.open_run(runs["fabric"])
    assert s.trained.can_rerank and not s.trained.attribute_specific
    motif = s.trained.fs.query_paths("test")[0].read_bytes()
    with running(create_app(s)) as url:
        plain = _post(url, motif, k="10").json()
        ranked = _post(url, motif, k="10", rerank="true").json()
        assert _post(url, motif, attributes="colour").status_code == 400
    assert ranked["reranked"] and "rerank" in ranked["timings_ms"] and "rerank" not in plain["timings_ms"]
    # the served list is the stage-1 shortlist (shortlist_k deep) re-scored by stage 2, cut to k
    img = s.decode(motif)
    pos, scores, _ = s.search(img, s.groups, s.trained.rerank_depth)
    pos2, scores2 = s.trained.rerank(img, pos, scores)
    assert sorted(pos2.tolist()) == sorted(pos.tolist()) and pos2.tolist() != pos.tolist()
    assert [x["id"] for x in ranked["results"]] == [s.collection.ids[p] for p in pos2[:10]]
    assert [x["score"] for x in ranked["results"]] == pytest.approx(scores2[:10].tolist(), abs=1e-5)
    assert np.all(np.diff(scores2) <= 1e-6)


def test_the_collection_is_kept_under_the_model_hash_and_rebuilt_when_it_changes(runs, capsys):
    s = search.open_run(runs["asfr"])
    capsys.readouterr()
    again = search.open_run(runs["asfr"])
    assert "embedded the collection" not in capsys.readouterr().out
    assert np.array_equal(again.collection.vectors["sleeve_length"], s.collection.vectors["sleeve_length"])
    (path,) = (runs["asfr"] / "index").glob("collection-*.npz")
    path.write_bytes(b"torn")
    rebuilt = search.open_run(runs["asfr"])
    assert "rebuilding the collection" in capsys.readouterr().out
    assert np.allclose(rebuilt.collection.vectors["sleeve_length"], s.collection.vectors["sleeve_length"])


def test_the_run_index_benchmark_reports_the_tracks_metric_under_each_index(runs):
    lines: list[str] = []
    rows, metrics = bench.bench_run(runs["asfr"], say=lines.append)
    assert metrics == ("map/weighted", "map/macro")
    exact = next(r for r in rows if r["kind"] == "exact")
    recorded = read_json(runs["asfr"] / "metrics.json")["metrics"]
    # exact search over the served collection reproduces the notebook's test MAP
    assert exact["map/weighted"] == pytest.approx(recorded["map/weighted"], abs=1e-6)
    assert exact["map/macro"] == pytest.approx(recorded["map/macro"], abs=1e-6)
    kinds = {r["kind"] for r in rows}
    assert {"exact", "flat", "ivf", "hnsw", "lsh", "kdtree"} <= kinds
    for r in rows:
        assert 0 <= r["recall"] <= 1 and r["qps"] > 0 and 0 <= r["map/weighted"] <= exact["map/weighted"] + 1e-9
    assert lines[-1].startswith("best ann: ")


def test_bench_serve_sends_a_bounded_load_and_reports_latency(runs, capsys):
    assert cli.main(["bench", "serve", "--run", str(runs["asfr"]), "--requests", "24", "--concurrency", "4"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    words = last.split()
    assert words[0] == "serve" and words[1] == "p50" and words[3] == "p95" and words[5:] == ["errors", "0"]
    assert 0 < float(words[2]) <= float(words[4])


def test_fgr_serve_answers_over_http_from_the_command_line(runs):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FGR_DATA_DIR": str(runs["base"] / "data"), "FGR_RUNS_DIR": str(runs["base"] / "runs")}
    proc = subprocess.Popen([sys.executable, "-m", "fgr_utils.cli", "serve", "30_asfr_train-asen_v2", "--profile",
                             "smoke", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-2000:]
            time.sleep(0.3)
        info = httpx.get(f"http://127.0.0.1:{port}/info").json()
        assert info["run"] == "30_asfr_train-asen_v2"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serving_something_that_is_not_a_run_says_what_to_give(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path)]) == 1
    assert "not a finished run" in capsys.readouterr().err


def test_decode_rejects_bad_bytes_with_one_line():
    from fgr_utils.data.images import BadUpload, decode_rgb

    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(buf, format="PNG")
    assert decode_rgb(buf.getvalue()).getpixel((0, 0)) == (255, 255, 255)
    for data, words in ((b"", "empty"), (b"GIF89a", "cannot read"), (buf.getvalue()[:40], "cannot read")):
        with pytest.raises(BadUpload, match=words):
            decode_rgb(data)


def test_notebook_40_benchmarks_trained_runs_with_their_metrics(runs):
    assert cli.main(["run", "40_index_benchmark", "--profile", "smoke", "--no-progress", "--name", "bench40",
                     "-p", "track_runs=30_asfr_train-asen_v2,10_fabric_global"]) == 0
    rec = read_json(runs["base"] / "runs/smoke/bench40/metrics.json")
    m = rec["metrics"]
    asfr = read_json(runs["asfr"] / "metrics.json")["metrics"]
    fab = read_json(runs["base"] / "runs/smoke/10_fabric_global/metrics.json")["metrics"]
    assert m["30_asfr_train-asen_v2/exact/map/weighted"] == pytest.approx(asfr["map/weighted"], abs=1e-6)
    assert m["10_fabric_global/exact/map"] == pytest.approx(fab["stage1/map"], abs=1e-6)
    assert {"30_asfr_train-asen_v2/hnsw/map/macro", "10_fabric_global/ivf/recall@10"} <= set(m)
    assert "figures/recall-qps-10_fabric_global.png" in rec["figures"]
