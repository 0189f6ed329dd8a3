"""The `fgr` command as a user types it: list, data list/download/verify/synth."""
from __future__ import annotations

import io
import tarfile

import pytest
from httpserver import FileServer

from fgr_utils import cli
from fgr_utils.data import registry
from fgr_utils.data.registry import Archive, DatasetSpec, LayoutCheck


def test_list_shows_notebooks_profiles_and_dataset_status(isolated_dirs, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.index("Notebooks") < out.index("Profiles") < out.index("Datasets")
    assert "00_datasets" in out and "core" in out
    for profile in ("smoke", "demo", "paper"):
        assert f"  {profile} " in out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if line.startswith("  ") and len(line.split()) > 1}
    assert lines["roxford5k"] == "missing" and lines["fashionai"] == "missing"
    assert lines["photo-landmarks"] == "missing"
    assert cli.main(["data", "synth", "photo-landmarks", "--size", "smoke"]) == 0
    assert "photo-landmarks (smoke, seed 0)" in capsys.readouterr().out
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:2] == ["photo-landmarks", "synthetic"] for line in out.splitlines())
    assert cli.main(["data", "verify", "photo-landmarks"]) == 0


def test_manual_dataset_download_prints_steps_and_verify_lists_missing(isolated_dirs, capsys):
    assert cli.main(["data", "download", "fashionai"]) == 0
    out = capsys.readouterr().out
    assert "tianchi.aliyun.com" in out and str(isolated_dirs / "data" / "fashionai") in out
    assert cli.main(["data", "verify", "fashionai"]) == 1
    out = capsys.readouterr().out
    assert "fashionai" in out and "does not exist" in out


def test_unknown_names_give_one_line(isolated_dirs, capsys):
    assert cli.main(["data", "verify", "imagenet"]) == 1
    assert capsys.readouterr().err.strip().startswith("fgr: unknown dataset 'imagenet'")
    assert cli.main(["data", "synth", "nope"]) == 1
    assert "no synthetic dataset called 'nope'" in capsys.readouterr().err
    assert cli.main(["data", "synth", "photo-landmarks", "--size", "huge"]) == 1
    assert "size 'huge'" in capsys.readouterr().err
    assert cli.main(["run", "99_nothing"]) == 1
    assert "no notebook '99_nothing'" in capsys.readouterr().err


def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def served_dataset(isolated_dirs, monkeypatch):
    archive = _tgz({f"set/img{i}.jpg": bytes([i]) * 100 for i in range(5)})
    with FileServer({"set.tgz": archive}) as server:
        spec = DatasetSpec(name="tiny-http", title="tiny", tracks=("core",), source="http",
                           archives=(Archive("set.tgz", url=server.url("set.tgz"), subdir="jpg", flatten=True),),
                           layout=(LayoutCheck("jpg/*.jpg", 5, 5, "images"),))
        monkeypatch.setitem(registry.DATASETS, spec.name, spec)
        yield server


def test_download_then_verify_through_the_command(served_dataset, isolated_dirs, capsys):
    assert cli.main(["data", "download", "tiny-http", "--no-progress"]) == 0
    assert "downloaded and verified" in capsys.readouterr().out
    assert sorted(p.name for p in (isolated_dirs / "data/tiny-http/jpg").iterdir()) == [f"img{i}.jpg" for i in range(5)]
    assert cli.main(["data", "verify", "tiny-http"]) == 0
    assert "ok" in capsys.readouterr().out
    (isolated_dirs / "data/tiny-http/jpg/img0.jpg").unlink()
    assert cli.main(["data", "verify", "tiny-http"]) == 1
    assert "expected jpg/*.jpg (5 images), found 4" in capsys.readouterr().out


def test_truncated_download_fails_with_one_line_then_resumes(served_dataset, isolated_dirs, capsys):
    served_dataset.truncate["set.tgz"] = 50
    assert cli.main(["data", "download", "tiny-http", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fgr data download tiny-http" in err
    assert not (isolated_dirs / "data/tiny-http").exists()
    served_dataset.truncate.clear()
    assert cli.main(["data", "download", "tiny-http", "--no-progress"]) == 0
    assert served_dataset.range_requests("set.tgz") == ["bytes=50-"]


def test_download_mirror_option_names_the_known_mirrors(isolated_dirs, capsys):
    assert cli.main(["data", "download", "shoev2", "--mirror", "dropbox"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no mirror 'dropbox'" in err and "kaggle, gdrive-alt" in err
    assert cli.main(["data", "download", "fashionai", "--mirror", "kaggle"]) == 1  # manual: no steps printed
    out, err = capsys.readouterr()
    assert "fashionai has no mirror" in err and "tianchi" not in out
    assert not (isolated_dirs / "data" / "shoev2").exists()
