"""Offline tests of fgr_utils.data.download (and its fetch and archives modules) against a local HTTP server
(tests/httpserver.py)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from fgr_utils.data import archives, fetch, registry
from fgr_utils.data import download as dl
from fgr_utils.data.registry import Archive, DatasetSpec, LayoutCheck
from fgr_utils.errors import FgrError

try:
    from httpserver import FileServer, make_zip
except ImportError:  # tests/ became a package
    from tests.httpserver import FileServer, make_zip


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(n: int, seed: int = 0) -> bytes:
    """n deterministic pseudo-random bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def make_tar(files: dict[str, bytes], *, gz: bool = True, extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buf.getvalue()


def tar_link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def images(prefix: str, n: int, seed: int = 0, ext: str = "jpg") -> dict[str, bytes]:
    return {f"{prefix}{i:03d}.{ext}": blob(100 + i, seed * 1000 + i) for i in range(n)}


def tree_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("FGR_DATA_DIR", str(d))
    return d


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


@pytest.fixture
def register(monkeypatch):
    def _register(spec: DatasetSpec) -> DatasetSpec:
        monkeypatch.setitem(registry.DATASETS, spec.name, spec)
        return spec

    return _register


# ------------------------------------------------------------------------------------------
# 1. a full download of a tar.gz and a zip
# ------------------------------------------------------------------------------------------


def test_full_download_targz_and_zip(data, server, register):
    tgz = make_tar({f"toy/img/{k}": v for k, v in images("im", 6).items()})
    zp = make_zip({"meta/labels.txt": b"a 1\nb 2\n", "meta/split.json": b"{}"})
    gnd = b"ground truth pickle stand-in"
    server.files.update({"toy/images.tar.gz": tgz, "toy/meta.zip": zp, "toy/gnd.pkl": gnd})
    spec = register(DatasetSpec(
        name="toy-http", title="toy", tracks=("test",), source="http",
        archives=(
            Archive("images.tar.gz", url=server.url("toy/images.tar.gz"), sha256=sha(tgz), size=len(tgz)),
            Archive("meta.zip", url=server.url("toy/meta.zip"), subdir="anno"),
            Archive("gnd.pkl", url=server.url("toy/gnd.pkl"), extract=False, sha256=sha(gnd)),
        ),
        layout=(LayoutCheck("toy/img/*.jpg", 6, 6, "images"), LayoutCheck("anno/meta/*.txt", 1, 1),
                LayoutCheck("gnd.pkl", 1, 1)),
    ))

    root = dl.download_dataset("toy-http", progress=False)

    assert root == data / "toy-http" and root.is_dir()
    assert registry.verify_layout(spec, root).ok
    assert (root / "gnd.pkl").read_bytes() == gnd
    assert (root / "anno/meta/labels.txt").read_bytes() == b"a 1\nb 2\n"
    manifest = json.loads((root / registry.MANIFEST).read_text())
    assert manifest["dataset"] == "toy-http" and manifest["source"].startswith("http ")
    assert manifest["downloaded"]
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == tree_files(root) - {registry.MANIFEST}
    for rel, entry in listed.items():
        content = (root / rel).read_bytes()
        assert entry["size"] == len(content) and entry["sha256"] == sha(content)
    # archives deleted, no leftovers
    assert not (data / dl.DOWNLOADS).exists()
    assert not (data / ".staging-toy-http").exists()
    assert [p.name for p in data.iterdir()] == ["toy-http"]
    assert dl.verify_dataset("toy-http").ok

    # idempotent: a second call does not touch the network
    n_requests = len(server.requests)
    assert dl.download_dataset("toy-http", progress=False) == root
    assert len(server.requests) == n_requests

    # force: fetched again and replaced, archives kept on request
    assert dl.download_dataset("toy-http", progress=False, force=True, keep_archives=True) == root
    assert len(server.requests) == n_requests + 3
    assert (data / dl.DOWNLOADS / "toy-http" / "images.tar.gz").read_bytes() == tgz
    assert dl.verify_dataset("toy-http").ok
    assert not (data / ".replaced-toy-http").exists()


def test_verify_dataset_reports_changed_and_missing_files(data, server, register):
    tgz = make_tar(images("img/", 4))
    server.files["a.tgz"] = tgz
    register(DatasetSpec(name="toy-verify", title="t", tracks=(), source="http",
                         archives=(Archive("a.tgz", url=server.url("a.tgz")),),
                         layout=(LayoutCheck("img/*.jpg", 2, what="images"),)))
    root = dl.download_dataset("toy-verify", progress=False)
    (root / "img/000.jpg").write_bytes(b"shorter")
    (root / "img/001.jpg").unlink()
    report = dl.verify_dataset("toy-verify")
    assert not report.ok
    text = report.summary()
    assert "img/000.jpg" in text and "changed" in text
    assert "img/001.jpg" in text and "missing" in text
    # a damaged copy is fetched again (without force) and the old one is kept aside
    root = dl.download_dataset("toy-verify", progress=False)
    assert dl.verify_dataset("toy-verify").ok
    assert (data / ".replaced-toy-verify" / "img/000.jpg").read_bytes() == b"shorter"


# ------------------------------------------------------------------------------------------
# 2. resume
# ------------------------------------------------------------------------------------------


def test_resumed_download_sends_range_and_appends(tmp_path, server):
    payload = blob(300_000, seed=2)
    server.files["big.bin"] = payload
    dest = tmp_path / "big.bin"
    half = len(payload) // 2
    (tmp_path / "big.bin.part").write_bytes(payload[:half])

    out = fetch.http_download(server.url("big.bin"), dest, sha256=sha(payload), progress=False, chunk_size=4096)

    assert out == dest
    assert server.range_requests("big.bin") == [f"bytes={half}-"]
    assert sha(dest.read_bytes()) == sha(payload)
    assert not (tmp_path / "big.bin.part").exists()


def test_resume_restarts_when_server_ignores_range(tmp_path, server):
    payload = blob(50_000, seed=3)
    server.files["f.bin"] = payload
    server.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(payload[:20_000])
    fetch.http_download(server.url("f.bin"), tmp_path / "f.bin", sha256=sha(payload), progress=True)
    assert server.range_requests("f.bin") == ["bytes=20000-"]
    assert (tmp_path / "f.bin").read_bytes() == payload


def test_complete_part_file_is_accepted_on_416(tmp_path, server):
    payload = blob(10_000, seed=4)
    server.files["f.bin"] = payload
    (tmp_path / "f.bin.part").write_bytes(payload)
    fetch.http_download(server.url("f.bin"), tmp_path / "f.bin", sha256=sha(payload), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == payload
    assert server.range_requests("f.bin") == ["bytes=10000-"]


def test_existing_valid_file_is_not_fetched_again(tmp_path, server):
    payload = blob(1000)
    server.files["f.bin"] = payload
    (tmp_path / "f.bin").write_bytes(payload)
    fetch.http_download(server.url("f.bin"), tmp_path / "f.bin", sha256=sha(payload), progress=False)
    assert server.requests == []


# ------------------------------------------------------------------------------------------
# 3. truncated transfer, then resume through download_dataset
# ------------------------------------------------------------------------------------------


def test_truncated_download_keeps_part_and_resumes(data, server, register):
    tgz = make_tar(images("jpg/", 20, seed=5))
    server.files["t.tgz"] = tgz
    cut = len(tgz) // 3
    server.truncate["t.tgz"] = cut
    register(DatasetSpec(name="toy-trunc", title="t", tracks=(), source="http",
                         archives=(Archive("t.tgz", url=server.url("t.tgz"), sha256=sha(tgz)),),
                         layout=(LayoutCheck("jpg/*.jpg", 20, 20),)))

    with pytest.raises(FgrError) as err:
        dl.download_dataset("toy-trunc", progress=False)
    msg = str(err.value)
    assert f"{cut} of {len(tgz)} bytes" in msg
    assert "fgr data download toy-trunc" in msg and "resume" in msg
    assert "\n" not in msg
    part = data / dl.DOWNLOADS / "toy-trunc" / "t.tgz.part"
    assert part.read_bytes() == tgz[:cut]
    assert not (data / "toy-trunc").exists()
    assert not (data / ".staging-toy-trunc").exists()

    server.truncate.clear()
    root = dl.download_dataset("toy-trunc", progress=False)
    assert server.range_requests("t.tgz") == [f"bytes={cut}-"]
    assert len(list((root / "jpg").glob("*.jpg"))) == 20
    assert not part.exists()


def test_truncated_resume_reply_also_reported(tmp_path, server):
    payload = blob(40_000, seed=6)
    server.files["f.bin"] = payload
    (tmp_path / "f.bin.part").write_bytes(payload[:10_000])
    server.truncate["f.bin"] = 5_000  # the 206 reply breaks off too
    with pytest.raises(FgrError, match="15000 of 40000 bytes"):
        fetch.http_download(server.url("f.bin"), tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin.part").read_bytes() == payload[:15_000]


# ------------------------------------------------------------------------------------------
# 4. wrong checksum
# ------------------------------------------------------------------------------------------


def test_wrong_checksum(data, server, register):
    tgz = make_tar(images("jpg/", 3))
    server.files["c.tgz"] = tgz
    wrong = "0" * 64
    register(DatasetSpec(name="toy-sum", title="t", tracks=(), source="http",
                         archives=(Archive("c.tgz", url=server.url("c.tgz"), sha256=wrong),),
                         layout=(LayoutCheck("jpg/*.jpg", 3),)))
    with pytest.raises(FgrError) as err:
        dl.download_dataset("toy-sum", progress=False)
    msg = str(err.value)
    assert wrong in msg and sha(tgz) in msg
    cache = data / dl.DOWNLOADS / "toy-sum"
    assert not (cache / "c.tgz").exists()
    assert not (cache / "c.tgz.part").exists()
    assert (cache / "c.tgz.bad").read_bytes() == tgz
    assert not (data / "toy-sum").exists()


# ------------------------------------------------------------------------------------------
# 5. archives that try to escape the folder
# ------------------------------------------------------------------------------------------


def _escaping_archives(tmp_path: Path) -> dict[str, bytes]:
    absolute = str(tmp_path / "abs-evil.txt")
    return {
        "dotdot-tar": make_tar({"ok.txt": b"fine", "../evil.txt": b"pwned"}),
        "dotdot-zip": make_zip({"ok.txt": b"fine", "sub/../../evil.txt": b"pwned"}),
        "absolute-tar": make_tar({"ok.txt": b"fine", absolute: b"pwned"}, gz=False),
        "absolute-zip": _zip_with_raw_name(absolute, b"pwned"),
        "symlink-etc": make_tar({"ok.txt": b"fine"}, extra=[tar_link("etc", "/etc")]),
        "symlink-up": make_tar({"ok.txt": b"fine"}, extra=[tar_link("a/up", "../../..")]),
        "hardlink-out": make_tar({"ok.txt": b"fine"}, extra=[tar_link("pw", "../../etc/passwd", hard=True)]),
        "beneath-link": make_tar({}, extra=[tar_link("d", "."), tarfile.TarInfo("d/x.txt")]),
        "chained-link": make_tar({}, extra=[tar_link("a", "."), tar_link("b", "a/../x")]),
    }


def _zip_with_raw_name(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # ZipInfo strips a leading '/', set it back as a hostile tool would
        zf.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["dotdot-tar", "dotdot-zip", "absolute-tar", "absolute-zip", "symlink-etc",
                                  "symlink-up", "hardlink-out", "beneath-link", "chained-link"])
def test_safe_extract_refuses_escapes(tmp_path, case):
    archive = tmp_path / "work" / "x.bin"
    archive.parent.mkdir()
    archive.write_bytes(_escaping_archives(tmp_path)[case])
    target = tmp_path / "work" / "out"
    before = set(os.listdir(tmp_path))
    with pytest.raises(FgrError, match="refusing to extract"):
        archives.safe_extract(archive, target)
    assert not target.exists() or not any(target.iterdir())
    assert set(os.listdir(tmp_path)) == before  # nothing written beside it
    assert os.listdir(tmp_path / "work") == ["x.bin"]  # temporary folder gone
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "abs-evil.txt").exists()


def test_escaping_archive_through_download_dataset(data, server, register, tmp_path):
    for case, content in _escaping_archives(tmp_path).items():
        server.files[f"{case}.bin"] = content
        register(DatasetSpec(name=f"toy-{case}", title="t", tracks=(), source="http",
                             archives=(Archive("x.tar", url=server.url(f"{case}.bin")),),
                             layout=(LayoutCheck("ok.txt", 1),)))
        with pytest.raises(FgrError, match="refusing to extract"):
            dl.download_dataset(f"toy-{case}", progress=False)
        assert not (data / f"toy-{case}").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "abs-evil.txt").exists()
    assert not (data / "evil.txt").exists()


def test_safe_extract_detects_type_by_content_and_skips_devices(tmp_path):
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    dev.devmajor, dev.devminor = 1, 3
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    inside = tar_link("sub/alias.txt", "../a.txt")
    archive = tmp_path / "download.dat"  # no telling extension
    archive.write_bytes(make_tar({"a.txt": b"A", "sub/b.txt": b"B"}, extra=[dev, fifo, inside]))
    out = archives.safe_extract(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out) == ["a.txt", "sub/alias.txt", "sub/b.txt"]
    assert (tmp_path / "out/sub/alias.txt").read_bytes() == b"A"  # an inside link is fine
    assert not (tmp_path / "out/dev").exists() and not (tmp_path / "out/pipe").exists()

    zarchive = tmp_path / "other.dat"
    zarchive.write_bytes(make_zip({"z/1.txt": b"1"}))
    archives.safe_extract(zarchive, tmp_path / "out")  # merges into the existing folder
    assert (tmp_path / "out/z/1.txt").read_bytes() == b"1" and (tmp_path / "out/a.txt").exists()

    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(FgrError, match="neither a zip nor a tar"):
        archives.safe_extract(junk, tmp_path / "out2")


def test_safe_extract_clash_leaves_target_untouched(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_bytes(b"mine")
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"new.txt": b"n", "a.txt": b"theirs"}))
    with pytest.raises(FgrError, match="already exist"):
        archives.safe_extract(archive, target)
    assert sorted(os.listdir(target)) == ["a.txt"] and (target / "a.txt").read_bytes() == b"mine"


# ------------------------------------------------------------------------------------------
# 6. flatten
# ------------------------------------------------------------------------------------------


def test_flatten_archives(data, server, register):
    p1 = make_tar({**images("paris/defense/paris_defense_", 3, seed=1),
                   **images("paris/eiffel/paris_eiffel_", 2, seed=2)})
    p2 = make_tar(images("paris/louvre/paris_louvre_", 4, seed=3))
    server.files.update({"p1.tgz": p1, "p2.tgz": p2})
    register(DatasetSpec(name="toy-paris", title="t", tracks=(), source="http",
                         archives=(Archive("p1.tgz", url=server.url("p1.tgz"), subdir="jpg", flatten=True),
                                   Archive("p2.tgz", url=server.url("p2.tgz"), subdir="jpg", flatten=True)),
                         layout=(LayoutCheck("jpg/*.jpg", 9, 9, "images"),)))
    root = dl.download_dataset("toy-paris", progress=False)
    entries = sorted(os.listdir(root / "jpg"))
    assert len(entries) == 9
    assert all((root / "jpg" / e).is_file() for e in entries)
    assert "paris_louvre_003.jpg" in entries
    assert not (root / "paris").exists()


def test_flatten_name_clash(data, server, register):
    clash = make_tar({"a/x.jpg": b"1", "b/x.jpg": b"2"})
    server.files["c.tgz"] = clash
    register(DatasetSpec(name="toy-clash", title="t", tracks=(), source="http",
                         archives=(Archive("c.tgz", url=server.url("c.tgz"), subdir="jpg", flatten=True),),
                         layout=(LayoutCheck("jpg/*.jpg", 2),)))
    with pytest.raises(FgrError, match="clash"):
        dl.download_dataset("toy-clash", progress=False)
    assert not (data / "toy-clash").exists()


# ------------------------------------------------------------------------------------------
# 7. requires + links
# ------------------------------------------------------------------------------------------


def test_requires_and_links(data, server, register):
    server.files["base.tgz"] = make_tar(images("oxbuild/", 5))
    server.files["gnd.pkl"] = b"revisited ground truth"
    register(DatasetSpec(name="toy-base", title="t", tracks=(), source="http",
                         archives=(Archive("base.tgz", url=server.url("base.tgz"), subdir="jpg", flatten=True),),
                         layout=(LayoutCheck("jpg/*.jpg", 5, 5),)))
    register(DatasetSpec(name="toy-rev", title="t", tracks=(), source="http",
                         archives=(Archive("gnd.pkl", url=server.url("gnd.pkl"), extract=False),),
                         requires=("toy-base",), links=(("jpg", "toy-base/jpg"),),
                         layout=(LayoutCheck("jpg/*.jpg", 4, what="images"), LayoutCheck("gnd.pkl", 1, 1))))

    root = dl.download_dataset("toy-rev", progress=False)

    assert (data / "toy-base/jpg").is_dir() and not (data / "toy-base/jpg").is_symlink()
    link = root / "jpg"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == (data / "toy-base/jpg").resolve()
    assert len(list(link.glob("*.jpg"))) == 5
    manifest = json.loads((root / registry.MANIFEST).read_text())
    assert [f["path"] for f in manifest["files"]] == ["gnd.pkl"]
    assert manifest["links"] == [{"path": "jpg", "target": os.readlink(link)}]
    assert dl.verify_dataset("toy-rev").ok
    # removing the required dataset breaks the link, and verify says so
    import shutil

    shutil.rmtree(data / "toy-base")
    assert not dl.verify_dataset("toy-rev").ok


def test_require_cycle(data, register):
    register(DatasetSpec(name="toy-c1", title="t", tracks=(), source="http", requires=("toy-c2",)))
    register(DatasetSpec(name="toy-c2", title="t", tracks=(), source="http", requires=("toy-c1",)))
    with pytest.raises(FgrError, match="cycle"):
        dl.download_dataset("toy-c1", progress=False)


# ------------------------------------------------------------------------------------------
# 8. layout mismatch
# ------------------------------------------------------------------------------------------


def test_layout_mismatch(data, server, register):
    server.files["few.tgz"] = make_tar(images("jpg/", 3))
    register(DatasetSpec(name="toy-few", title="t", tracks=(), source="http",
                         archives=(Archive("few.tgz", url=server.url("few.tgz")),),
                         layout=(LayoutCheck("jpg/*.jpg", 10, what="images"), LayoutCheck("gnd.pkl", 1, 1))))
    with pytest.raises(FgrError) as err:
        dl.download_dataset("toy-few", progress=False)
    msg = str(err.value)
    assert "jpg/*.jpg (>= 10 images), found 3" in msg
    assert "gnd.pkl" in msg and "found 0" in msg
    staging = data / ".staging-toy-few"
    assert str(staging) in msg and staging.is_dir()
    assert not (data / "toy-few").exists()
    assert (data / dl.DOWNLOADS / "toy-few" / "few.tgz").exists()  # kept for the next try
    # the next run clears the leftover staging folder and does not download again
    n = len(server.requests)
    with pytest.raises(FgrError):
        dl.download_dataset("toy-few", progress=False)
    assert len(server.requests) == n


# ------------------------------------------------------------------------------------------
# 9. Kaggle
# ------------------------------------------------------------------------------------------


def _no_kaggle_env(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for var in list(os.environ):
        if var.startswith("KAGGLE_"):
            monkeypatch.delenv(var)
    for mod in list(sys.modules):
        if mod == "kaggle" or mod.startswith("kaggle."):
            monkeypatch.delitem(sys.modules, mod)
    return home


def test_kaggle_without_credentials(data, tmp_path, monkeypatch, register):
    home = _no_kaggle_env(tmp_path, monkeypatch)
    register(DatasetSpec(name="toy-kaggle", title="t", tracks=(), source="kaggle", kaggle_id="someone/some-data",
                         layout=(LayoutCheck("*.png", 1),)))
    with pytest.raises(FgrError) as err:
        dl.download_dataset("toy-kaggle", progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    for option in ("KAGGLE_API_TOKEN", "access_token", "kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        assert option in msg
    assert not any(m == "kaggle" or m.startswith("kaggle.") for m in sys.modules)
    assert not (home / ".kaggle").exists()  # the kaggle client was never run
    assert not (data / "toy-kaggle").exists()


def test_kaggle_credential_order(tmp_path, monkeypatch):
    home = _no_kaggle_env(tmp_path, monkeypatch)
    assert fetch.kaggle_credentials() is None
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    assert fetch.kaggle_credentials() is None  # needs the key as well
    monkeypatch.setenv("KAGGLE_KEY", "k")
    assert fetch.kaggle_credentials() == "KAGGLE_USERNAME/KAGGLE_KEY"
    xdg = home / ".config" / "kaggle"
    xdg.mkdir(parents=True)
    (xdg / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert fetch.kaggle_credentials() == str(xdg / "kaggle.json")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "kaggle.json").write_text("{}")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(conf))
    assert fetch.kaggle_credentials() == str(conf / "kaggle.json")
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "access_token").write_text("tok")
    assert fetch.kaggle_credentials() == str(home / ".kaggle" / "access_token")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "tok")
    assert fetch.kaggle_credentials() == "KAGGLE_API_TOKEN"
    assert not any(m == "kaggle" or m.startswith("kaggle.") for m in sys.modules)


def test_kaggle_flow_with_a_stand_in_client(data, tmp_path, monkeypatch, register):
    """The Kaggle path end to end, with a fake client module in place of the real one."""
    payload = make_zip({f"Sim/train/{k}": v for k, v in images("f", 3, ext="png").items()})
    calls = _stand_in_kaggle(tmp_path, monkeypatch, payload)
    register(DatasetSpec(name="toy-kg", title="t", tracks=(), source="kaggle", kaggle_id="someone/sim-data",
                         layout=(LayoutCheck("Sim/train/*.png", 3, 3),)))
    root = dl.download_dataset("toy-kg", progress=False)
    assert calls == ["auth", ("someone/sim-data", False, True)]
    assert len(list((root / "Sim/train").glob("*.png"))) == 3
    assert not (data / dl.DOWNLOADS).exists()


def test_gdrive_shared_archive_is_reused(data, monkeypatch, register):
    import gdown

    payload = make_zip({**{f"pack/ShoeV2/testB/{k}": v for k, v in images("s", 2, ext="png").items()},
                        **{f"pack/ChairV2/testB/{k}": v for k, v in images("c", 3, ext="png").items()}})
    calls = []

    def fake_download(id=None, output=None, quiet=False, resume=False):
        calls.append((id, resume))
        Path(output).write_bytes(payload)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    shared = Archive("pack.zip", gdrive_id="DRIVE-ID", sha256=sha(payload))
    register(DatasetSpec(name="toy-shoe", title="t", tracks=(), source="gdrive", archives=(shared,),
                         layout=(LayoutCheck("**/ShoeV2/testB/*.png", 2, 2),)))
    register(DatasetSpec(name="toy-chair", title="t", tracks=(), source="gdrive", archives=(shared,),
                         layout=(LayoutCheck("**/ChairV2/testB/*.png", 3, 3),)))
    dl.download_dataset("toy-shoe", progress=False, keep_archives=True)
    dl.download_dataset("toy-chair", progress=False)
    assert calls == [("DRIVE-ID", True)]  # the second dataset used the cached zip
    assert dl.verify_dataset("toy-shoe").ok and dl.verify_dataset("toy-chair").ok
    assert (data / dl.DOWNLOADS / "toy-shoe" / "pack.zip").exists()

    monkeypatch.setattr(gdown, "download", lambda **kw: None)
    register(DatasetSpec(name="toy-gone", title="t", tracks=(), source="gdrive",
                         archives=(Archive("gone.zip", gdrive_id="GONE"),), layout=(LayoutCheck("*", 1),)))
    with pytest.raises(FgrError, match="GONE"):
        dl.download_dataset("toy-gone", progress=False)


def test_gdrive_folder(data, monkeypatch, register):
    import gdown

    calls = []

    def fake_download_folder(id=None, output=None, quiet=False, resume=False):
        calls.append((id, resume))
        written = []
        for split, n in (("trainA", 3), ("testB", 2)):
            d = Path(output) / "ClothesV1" / split
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (d / f"{i}.png").write_bytes(blob(50, i))
                written.append(str(d / f"{i}.png"))
        return written

    monkeypatch.setattr(gdown, "download_folder", fake_download_folder)
    register(DatasetSpec(name="toy-folder", title="t", tracks=(), source="gdrive-folder", gdrive_folder_id="FOLDER",
                         layout=(LayoutCheck("**/trainA/*.png", 3, 3), LayoutCheck("**/testB/*.png", 2, 2))))
    root = dl.download_dataset("toy-folder", progress=False)
    assert calls == [("FOLDER", True)]
    assert len(list(root.rglob("*.png"))) == 5
    assert not (data / dl.DOWNLOADS).exists()


def test_expected_size_mismatch(tmp_path, server):
    server.files["f.bin"] = b"x" * 100
    with pytest.raises(FgrError, match="100 bytes on the server but 120"):
        fetch.http_download(server.url("f.bin"), tmp_path / "f.bin", expected_size=120, progress=False)
    assert not (tmp_path / "f.bin").exists()


def test_manual_dataset(data, register, capsys):
    register(DatasetSpec(name="toy-manual", title="Toy manual set", tracks=(), source="manual",
                         layout=(LayoutCheck("*.mat", 1, what=".mat files"),),
                         manual_steps=("Ask the authors.", "Place the files in {dest}/.")))
    assert dl.download_dataset("toy-manual", progress=False) is None
    text = dl.manual_instructions("toy-manual")
    assert "1. Ask the authors." in text
    assert f"2. Place the files in {data / 'toy-manual'}/." in text
    assert f"Destination folder: {data / 'toy-manual'}" in text
    assert dl.ensure_datasets(["toy-manual"], progress=False) == {"toy-manual": data / "toy-manual"}
    assert "Ask the authors." in capsys.readouterr().out
    assert not dl.verify_dataset("toy-manual").ok
    (data / "toy-manual").mkdir(parents=True)
    (data / "toy-manual" / "a.mat").write_bytes(b"x")
    assert dl.download_dataset("toy-manual", progress=False) == data / "toy-manual"
    assert dl.ensure_datasets(["toy-manual"], progress=False) == {"toy-manual": data / "toy-manual"}
    assert capsys.readouterr().out == ""
    assert dl.verify_dataset("toy-manual").ok


# ------------------------------------------------------------------------------------------
# 10. HTTP errors
# ------------------------------------------------------------------------------------------


def test_404_names_the_url(data, server, register):
    url = server.url("nowhere/missing.tgz")
    register(DatasetSpec(name="toy-404", title="t", tracks=(), source="http",
                         archives=(Archive("missing.tgz", url=url),), layout=(LayoutCheck("*", 1),)))
    with pytest.raises(FgrError) as err:
        dl.download_dataset("toy-404", progress=False)
    assert url in str(err.value) and "404" in str(err.value)
    assert not (data / "toy-404").exists()
    assert list(data.iterdir()) == []  # no staging folder, no empty cache folder left behind


def test_500_and_refused_connection(tmp_path, server):
    server.files["x"] = b"x"
    server.status["x"] = 500
    with pytest.raises(FgrError, match="HTTP 500"):
        fetch.http_download(server.url("x"), tmp_path / "x", progress=False)
    dead = server.url("x")
    server.stop()
    with pytest.raises(FgrError, match="cannot download " + dead):
        fetch.http_download(dead, tmp_path / "x", progress=False, timeout=5)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------
# 11. mirrors and the post-extraction converter (QMUL-V2 from Kaggle in the stroke-pickle layout)
# ------------------------------------------------------------------------------------------


def _stand_in_kaggle(tmp_path, monkeypatch, payload: bytes) -> list:
    """A fake Kaggle client module that writes ``payload`` as the dataset's zip; returns its call log."""
    import types

    _no_kaggle_env(tmp_path, monkeypatch)
    monkeypatch.setenv("KAGGLE_API_TOKEN", "fake-token")
    calls = []

    class FakeApi:
        def authenticate(self):
            calls.append("auth")

        def dataset_download_files(self, handle, path=None, unzip=False, quiet=True):
            calls.append((handle, unzip, quiet))
            Path(path, handle.split("/")[1] + ".zip").write_bytes(payload)

    fake = types.ModuleType("kaggle.api.kaggle_api_extended")
    fake.KaggleApi = FakeApi
    for mod in ("kaggle", "kaggle.api"):
        monkeypatch.setitem(sys.modules, mod, types.ModuleType(mod))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", fake)
    return calls


def _coordinate_zip() -> bytes:
    """A Bhunia-style mirror: Dataset/<Name>/photo/*.png and Dataset/<Name>/<Name>_Coordinate, with
    ChairV2 at its released test size (323 sketches of 100 photos, suffixes up to _4) and a scrap of ShoeV2."""
    import pickle

    import numpy as np

    line = np.array([[10.0, 20.0, 0.0], [60.0, 20.0, 1.0]])
    chair = {f"/test/c{i % 100:03d}_{i // 100 + 1}": line for i in range(323)}
    chair.update({f"/train/t{i}_{k}": line for i in range(3) for k in (1, 2, 12)})
    files = {f"fg-sbir/Dataset/ChairV2/photo/{p}.png": blob(60, i)
             for i, p in enumerate([f"c{i:03d}" for i in range(100)] + ["t0", "t1", "t2"])}
    files["fg-sbir/Dataset/ChairV2/ChairV2_Coordinate"] = pickle.dumps(chair, protocol=2)
    files["fg-sbir/Dataset/ShoeV2/photo/s0.png"] = blob(60, 999)
    files["fg-sbir/Dataset/ShoeV2/ShoeV2_Coordinate"] = pickle.dumps({"/test/s0_1": line}, protocol=2)
    return make_zip(files)


def test_kaggle_mirror_converts_the_stroke_layout_to_ab(data, tmp_path, monkeypatch, capsys):
    from fgr_utils import cli
    from fgr_utils.data.sketches import load_sketches

    calls = _stand_in_kaggle(tmp_path, monkeypatch, _coordinate_zip())
    assert registry.get("chairv2").source == "gdrive"  # the default is untouched

    assert cli.main(["data", "download", "chairv2", "--mirror", "kaggle", "--no-progress"]) == 0
    assert "downloaded and verified" in capsys.readouterr().out
    assert calls == ["auth", ("b20dccn616nguynhutun/fg-sbir-dataset", False, True)]
    root = data / "chairv2"
    ab = root / "fg-sbir/Dataset/ChairV2"
    s = load_sketches(root)  # the folder name chairv2 picks ChairV2/
    assert s.root == ab
    assert s.counts()["test"] == {"photos": 100, "sketches": 323, "photos_without_sketch": 0,
                                  "unpaired_sketches": 0, "dropped_single_digit": 0}
    assert s.counts()["train"]["sketches"] == 9 and s.counts()["train"]["photos"] == 3
    assert (ab / "testB/c007.png").read_bytes() == blob(60, 7)  # the mirror's photo, linked or copied
    assert not (root / "fg-sbir/Dataset/ShoeV2/testA").exists()
    manifest = json.loads((root / registry.MANIFEST).read_text())
    assert manifest["source"] == "kaggle b20dccn616nguynhutun/fg-sbir-dataset"
    assert "fg-sbir/Dataset/ChairV2/testA/c000_1.png" in {f["path"] for f in manifest["files"]}
    assert dl.verify_dataset("chairv2").ok
    assert not (data / dl.DOWNLOADS).exists() and not (data / ".staging-chairv2").exists()


def test_mirror_with_an_unknown_layout_keeps_the_files_and_says_what_it_found(data, tmp_path, monkeypatch):
    _stand_in_kaggle(tmp_path, monkeypatch, make_zip({"odd/ChairV2/sketches.npz": b"x", "odd/readme.txt": b"y"}))
    with pytest.raises(FgrError) as err:
        dl.download_dataset("chairv2", mirror="kaggle", progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert "cannot find ChairV2" in msg and "odd/ChairV2/" in msg
    staging = data / ".staging-chairv2"
    assert str(staging) in msg and (staging / "odd/readme.txt").is_file()
    assert not (data / "chairv2").exists()


def test_unknown_mirror_is_an_error(data):
    with pytest.raises(FgrError) as err:
        dl.download_dataset("shoev2", mirror="dropbox", progress=False)
    assert "no mirror 'dropbox'" in str(err.value) and "kaggle, gdrive-alt" in str(err.value)
    with pytest.raises(FgrError, match="no mirror to download from"):
        dl.download_dataset("oxford5k", mirror="kaggle", progress=False)
    kaggle = registry.get("shoev2").via("kaggle")
    assert (kaggle.name, kaggle.source, kaggle.layout) == ("shoev2", "kaggle", registry.get("shoev2").layout)
    assert kaggle.convert and not registry.get("shoev2").convert


def test_default_gdrive_download_of_chairv2_is_unchanged(data, monkeypatch):
    import gdown

    files = {}
    for split, n_photo, n_sketch in (("train", 300, 952), ("test", 100, 323)):
        files.update({f"pack/ChairV2/{split}B/c{i:03d}.png": b"" for i in range(n_photo)})
        files.update({f"pack/ChairV2/{split}A/c{i % n_photo:03d}_{i // n_photo + 1}.png": b"" for i in range(n_sketch)})
    payload = make_zip(files)
    calls = []

    def fake_download(id=None, output=None, quiet=False, resume=False):
        calls.append(id)
        Path(output).write_bytes(payload)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    root = dl.download_dataset("chairv2", progress=False)
    assert calls == ["1frltfiEd9ymnODZFHYrbg741kfys1rq1"]
    assert tree_files(root) - {registry.MANIFEST} == set(files)  # nothing converted or added
    from fgr_utils.data.sketches import load_sketches

    assert load_sketches(root).check_counts("chairv2")["total"]["sketches"] == 1275


# ------------------------------------------------------------------------------------------
# the module split: orchestration, fetching, archives
# ------------------------------------------------------------------------------------------


def test_download_keeps_its_public_names_and_imports_no_client():
    assert {"download_dataset", "ensure_datasets", "verify_dataset", "manual_instructions"} <= set(dl.__all__)
    for name in dl.__all__:
        assert hasattr(dl, name), name
    code = ("import sys, fgr_utils.data.download, fgr_utils.data.fetch, fgr_utils.data.archives; "
            "print(','.join(m for m in ('kaggle', 'gdown') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == ""
