"""The dataset registry as one source of dataset names: formats, tracks, synthetic and real sets."""
from __future__ import annotations

import itertools

import pytest
from conftest import synth_in

from fgr_utils.data import registry, sketches, synth
from fgr_utils.data.attributes import load_attribute_set
from fgr_utils.data.fabrics import load_fabrics
from fgr_utils.data.landmarks import load_landmarks
from fgr_utils.errors import FgrError

KNOWN_TRACKS = {"fabric", "sbir", "asfr", "search"}
ALL_TRACKS = sorted({t for d in registry.DATASETS.values() for t in d.tracks}
                    | {t for g in synth.GENERATORS.values() for t in g.tracks})


def _entry(name: str):
    return synth.GENERATORS[name] if name in synth.GENERATORS else registry.DATASETS[name]


def test_names_lists_synthetic_then_real_in_registration_order():
    assert registry.names(synthetic=True) == tuple(synth.GENERATORS)
    assert registry.names(synthetic=False) == tuple(registry.DATASETS)
    assert registry.names() == tuple(synth.GENERATORS) + tuple(registry.DATASETS)
    assert len(set(registry.names())) == len(registry.names()), "a name is both synthetic and real"


def test_importing_synth_registers_every_generator():
    assert tuple(synth.GENERATORS) == ("photo-landmarks", "sim-fabrics", "sim-revisited", "sbir-garments",
                                       "sbir-garments-xdog", "sbir-garments-canny", "asfr-garments")


def test_names_filters():
    assert registry.names(format="sketches") == ("sbir-garments", "sbir-garments-xdog", "sbir-garments-canny",
                                                 "shoev2", "chairv2", "clothesv1")
    assert registry.names(format="landmarks", synthetic=True) == ("photo-landmarks", "sim-revisited")
    assert registry.names(format="fabrics") == ("sim-fabrics", "printed-fabrics")
    assert registry.names(format="attributes", synthetic=False) == ("fashionai", "deepfashion", "darn")
    assert registry.names(format="triplets") == ("zappos50k",)
    assert registry.names(track="asfr", synthetic=True) == ("asfr-garments",)
    assert {"qmul-v1", "sketchy"} <= set(registry.names(track="sbir", format=""))
    assert "revisitop1m" in registry.names(track="search", synthetic=False)
    assert registry.names(track="no-such-track") == ()
    with pytest.raises(FgrError, match="unknown dataset format 'sketch'"):
        registry.names(format="sketch")


@pytest.mark.parametrize("track, fmt, synthetic",
                         list(itertools.product([None, *ALL_TRACKS], [None, "", *registry.FORMATS], [None, True, False])))
def test_names_is_the_intersection_of_its_filters(track, fmt, synthetic):
    got = registry.names(track=track, format=fmt, synthetic=synthetic)
    expected = [n for n in registry.names()
                if (track is None or track in _entry(n).tracks) and (fmt is None or _entry(n).format == fmt)
                and (synthetic is None or registry.is_synthetic(n) == synthetic)]
    assert got == tuple(expected)


def test_formats_partition_the_names_and_name_registered_datasets():
    by_format = {f: registry.names(format=f) for f in ("", *registry.FORMATS)}
    assert sorted(n for names in by_format.values() for n in names) == sorted(registry.names())
    for fmt in registry.FORMATS:
        assert by_format[fmt], f"no dataset is read by the {fmt} readers"
        for name in by_format[fmt]:
            assert (name in synth.GENERATORS) != (name in registry.DATASETS), name
            assert _entry(name).format == fmt


def test_every_generator_names_known_tracks_and_a_format():
    for gen in synth.GENERATORS.values():
        assert gen.tracks and set(gen.tracks) <= KNOWN_TRACKS, gen.name
        assert gen.format in registry.FORMATS, gen.name
    for spec in registry.DATASETS.values():
        assert set(spec.tracks) <= KNOWN_TRACKS, spec.name
        assert spec.format in ("", *registry.FORMATS), spec.name


def test_sketch_format_is_what_the_ab_reader_reads():
    assert set(registry.names(format="sketches", synthetic=False)) == set(sketches.AB_FOLDERS)


def test_stand_ins_write_the_format_and_serve_the_track_of_what_they_stand_in_for():
    for spec in registry.DATASETS.values():
        if not spec.stand_in:
            continue
        gen = synth.GENERATORS[spec.stand_in]
        assert set(spec.tracks) & set(gen.tracks), spec.name
        # asfr-garments writes ASEN split files and, beside them, Zappos-style triplet lists
        assert spec.format == gen.format or (spec.format, gen.format) == ("triplets", "attributes"), spec.name
    for name in registry.names(synthetic=False):
        spec = registry.DATASETS[name]
        if spec.format in ("fabrics", "landmarks", "sketches", "attributes"):
            assert spec.stand_in, f"{name}: a real {spec.format} set without a synthetic stand-in"


def test_is_synthetic():
    assert all(registry.is_synthetic(n) for n in synth.GENERATORS)
    assert not any(registry.is_synthetic(n) for n in registry.DATASETS)
    with pytest.raises(FgrError, match="unknown dataset 'imagenet'"):
        registry.is_synthetic("imagenet")


def test_spec_rejects_an_unknown_format():
    with pytest.raises(ValueError, match="unknown format 'pictures'"):
        registry.DatasetSpec(name="x", title="x", tracks=("fabric",), source="manual", format="pictures")


def test_catalogue_fills_tracks_of_synthetic_rows(isolated_dirs):
    rows = {r["name"]: r for r in registry.catalogue()}
    assert set(rows) == set(registry.names())
    for gen in synth.GENERATORS.values():
        assert rows[gen.name]["tracks"] == ",".join(gen.tracks)
        assert rows[gen.name]["status"] == "missing"


READERS = {
    "fabrics": lambda name, root: load_fabrics(root),
    "landmarks": lambda name, root: load_landmarks(root),
    "sketches": lambda name, root: sketches.load_sketches(root),
    "attributes": lambda name, root: load_attribute_set(root),
}


@pytest.mark.parametrize("name", [n for n in synth.GENERATORS if n != "asfr-garments"])
def test_each_generated_set_is_read_by_its_formats_reader(tmp_path, name):
    # asfr-garments (the slowest generator) is read by load_attribute_set in tests/test_attributes.py
    fmt = synth.GENERATORS[name].format
    assert fmt in READERS
    READERS[fmt](name, synth_in(tmp_path, name))
