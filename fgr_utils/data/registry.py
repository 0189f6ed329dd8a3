"""What each dataset is, where it comes from, and what it must look like on disk.

One :class:`DatasetSpec` per dataset of ``shared/reference/datasets.md``. A real dataset lives in
``<data>/<name>/``; it counts as present when its layout checks pass. ``fgr data download NAME``
fetches it (``fgr_utils.data.download``), ``fgr data verify NAME`` runs the checks and lists what is
missing. Synthetic stand-ins are registered in ``fgr_utils.data.synth`` and live under
``<data>/synth/<name>/<size>-seed<seed>/``.

Real and synthetic datasets both say which tracks use them and which of the kit's reader families
(:data:`FORMATS`) reads them as installed, so :func:`names` is the one source for "every dataset a
reader or track handles": the sample figures, the tracks and the tests ask it instead of keeping
their own lists of names.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from fgr_utils.data import synth
from fgr_utils.errors import DatasetMissing, FgrError
from fgr_utils.paths import data_dir

SOURCES = ("http", "kaggle", "gdrive", "gdrive-folder", "manual")
MANIFEST = ".fgr-manifest.json"
#: The kit's reader families, by what a dataset looks like as installed:
#: "fabrics" (fgr_utils.data.fabrics: SimulatedPrintedFabrics layout), "landmarks" (fgr_utils.data.landmarks:
#: jpg/ + gnd pickle), "sketches" (fgr_utils.data.sketches: A/B folders), "attributes"
#: (fgr_utils.data.attributes: ASEN split files), "triplets" (fgr_utils.data.attributes.load_triplet_lists: an
#: image set read through CSN's conditional triplet lists, as zappos50k with those of csn-zappos-triplets).
#: A dataset no reader of the kit reads has format "".
FORMATS = ("fabrics", "landmarks", "sketches", "attributes", "triplets")


@dataclass(frozen=True)
class Archive:
    """One file to fetch for a dataset."""

    name: str  # file name as stored in the download cache
    url: str = ""  # HTTP(S) address (source "http")
    gdrive_id: str = ""  # Google Drive file id (source "gdrive")
    sha256: str | None = None  # checked after download when known
    extract: bool = True  # False: keep the file as it is (a .pkl, .mat, .hdf5)
    subdir: str = ""  # where inside the dataset folder it is extracted or placed
    flatten: bool = False  # move every file found after extraction directly into ``subdir``
    size: int | None = None  # expected size in bytes, when known


@dataclass(frozen=True)
class LayoutCheck:
    """``pattern`` (a glob relative to the dataset folder) must match between min and max files."""

    pattern: str
    min_count: int = 1
    max_count: int | None = None
    what: str = ""

    def describe(self) -> str:
        if self.max_count is None:
            n = f">= {self.min_count}"
        elif self.max_count == self.min_count:
            n = f"{self.min_count}"
        else:
            n = f"{self.min_count}-{self.max_count}"
        return f"{self.pattern} ({n} {self.what or 'files'})"


@dataclass(frozen=True)
class Mirror:
    """An alternative source of a dataset: ``fgr data download NAME --mirror LABEL``.

    Mirrors exist because Drive quotas and dead hosts make the first source unreliable. A mirror may
    unpack into another layout than the dataset's own; ``convert`` then names the hook that rewrites
    what was unpacked into that layout (see :attr:`DatasetSpec.convert`).
    """

    label: str  # what --mirror takes, e.g. "kaggle"
    source: str  # one of SOURCES except "manual"
    archives: tuple[Archive, ...] = ()
    kaggle_id: str = ""
    gdrive_folder_id: str = ""
    convert: str = ""
    notes: str = ""

    def __post_init__(self):
        if self.source not in SOURCES or self.source == "manual":
            raise ValueError(f"mirror {self.label}: unusable source {self.source!r}")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    tracks: tuple[str, ...]
    source: str  # one of SOURCES
    archives: tuple[Archive, ...] = ()
    kaggle_id: str = ""
    gdrive_folder_id: str = ""
    layout: tuple[LayoutCheck, ...] = ()
    expected: str = ""  # expected counts, in words, from the reference
    licence: str = ""
    manual_steps: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # datasets that must be fetched first
    links: tuple[tuple[str, str], ...] = ()  # (path in this dataset, "<dataset>/<path>") symlinks
    stand_in: str = ""  # synthetic generator that writes this dataset's format
    format: str = ""  # the reader family (one of FORMATS) that reads it as installed; "" for none
    notes: str = ""
    mirrors: tuple[str, ...] = field(default=())  # other places to get it by hand, in words
    # Post-extraction hook, "package.module:function", called as function(staging_folder, spec) after
    # everything is unpacked and before the layout checks: it rewrites a layout that differs.
    convert: str = ""
    alternatives: tuple[Mirror, ...] = ()  # sources `fgr data download NAME --mirror LABEL` can use

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"{self.name}: unknown source {self.source!r}")
        if self.format and self.format not in FORMATS:
            raise ValueError(f"{self.name}: unknown format {self.format!r}; formats are {', '.join(FORMATS)}")

    def via(self, label: str) -> "DatasetSpec":
        """This dataset fetched from the mirror ``label``: same name, layout and checks, other source."""
        for m in self.alternatives:
            if m.label == label:
                return dataclasses.replace(self, source=m.source, archives=m.archives, kaggle_id=m.kaggle_id,
                                           gdrive_folder_id=m.gdrive_folder_id, convert=m.convert, alternatives=())
        known = ", ".join(m.label for m in self.alternatives)
        if not known:
            raise FgrError(f"{self.name} has no mirror to download from; run `fgr data download {self.name}` "
                           "without --mirror")
        raise FgrError(f"{self.name} has no mirror {label!r}; choose one of: {known} (or leave out --mirror for "
                       f"{self.source_text})")

    @property
    def source_text(self) -> str:
        if self.source == "kaggle":
            return f"kaggle {self.kaggle_id}"
        if self.source == "gdrive-folder":
            return f"gdrive folder {self.gdrive_folder_id}"
        if self.source == "gdrive":
            return "gdrive " + ", ".join(a.gdrive_id for a in self.archives)
        if self.source == "http":
            return "http " + ", ".join(a.url for a in self.archives[:2]) + (" ..." if len(self.archives) > 2 else "")
        return "manual"


_OX = "https://www.robots.ox.ac.uk/~vgg/data"
_CIR = "http://cmp.felk.cvut.cz/cnnimageretrieval/data/test"
_REV = "http://cmp.felk.cvut.cz/revisitop/data"

_FABRIC_LAYOUT = (
    LayoutCheck("**/SimulatedPrintedFabrics-17k/train/img/images/*.png", 1, what="training fabrics"),
    LayoutCheck("**/SimulatedPrintedFabrics-17k/test/img/images/*.png", 1, what="test fabrics"),
)

# QMUL-Shoe-V2 and Chair-V2: one SketchX zip in the A/B layout, and mirrors whose layout may be the
# Bhunia-family one (photo/ + <Name>_Coordinate stroke pickle); the hook turns either into A/B.
_SKETCHX_ZIP = Archive("sketchx_shoe_chair_v2.zip", gdrive_id="1frltfiEd9ymnODZFHYrbg741kfys1rq1")
_TO_AB = "fgr_utils.data.sketches:convert_download"
_QMUL_V2_MIRRORS = (
    Mirror("kaggle", "kaggle", kaggle_id="b20dccn616nguynhutun/fg-sbir-dataset", convert=_TO_AB,
           notes="ShoeV2/, ChairV2/, photo folders and <Name>_Coordinate pickles; exact layout undocumented"),
    Mirror("gdrive-alt", "gdrive", convert=_TO_AB,
           archives=(Archive("qmul_v2_alt.zip", gdrive_id="15s2BR-QwLgX_DObQBrYlUlZqUU90EL9G"),),
           notes="Drive id from AyanKumarBhunia/semisupervised-FGSBIR issue #1; contents undocumented"),
)

DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


for _spec in [
    DatasetSpec(
        name="printed-fabrics",
        title="SimulatedPrintedFabrics-17k and RealPrintedFabrics-13k (sub-element motifs)",
        tracks=("fabric",),
        format="fabrics",
        source="kaggle",
        kaggle_id="yunjiaoma/finegrainedsubelementretrievaldataset",
        layout=_FABRIC_LAYOUT,
        expected="about 17k simulated and 13k real fabrics; split counts are not documented (recorded on download)",
        licence="per the Kaggle dataset page; no redistribution",
        stand_in="sim-fabrics",
        notes="layout only partly known; the fabric reader reports what it finds",
    ),
    DatasetSpec(
        name="oxford5k",
        title="Oxford5k buildings (old protocol, face-blurred v1 images)",
        tracks=("fabric",),
        format="landmarks",
        source="http",
        archives=(
            Archive("oxbuild_images-v1.tgz", url=f"{_OX}/oxbuildings/oxbuild_images-v1.tgz", subdir="jpg", flatten=True),
            Archive("gnd_oxford5k.pkl", url=f"{_CIR}/oxford5k/gnd_oxford5k.pkl", extract=False),
        ),
        layout=(LayoutCheck("jpg/*.jpg", 5062, 5063, "images"), LayoutCheck("gnd_oxford5k.pkl", 1, 1, "ground truth")),
        expected="5,062 images (5,063 in some counts); 55 queries",
        licence="research benchmark",
        stand_in="photo-landmarks",
    ),
    DatasetSpec(
        name="paris6k",
        title="Paris6k buildings (old protocol, v1 images)",
        tracks=("fabric",),
        format="landmarks",
        source="http",
        archives=(
            Archive("paris_1-v1.tgz", url=f"{_OX}/parisbuildings/paris_1-v1.tgz", subdir="jpg", flatten=True),
            Archive("paris_2-v1.tgz", url=f"{_OX}/parisbuildings/paris_2-v1.tgz", subdir="jpg", flatten=True),
            Archive("gnd_paris6k.pkl", url=f"{_CIR}/paris6k/gnd_paris6k.pkl", extract=False),
        ),
        layout=(LayoutCheck("jpg/*.jpg", 6392, what="images"), LayoutCheck("gnd_paris6k.pkl", 1, 1, "ground truth")),
        expected="6,392 usable images; 55 queries",
        licence="research benchmark",
        stand_in="photo-landmarks",
    ),
    DatasetSpec(
        name="roxford5k",
        title="Revisited Oxford (Easy / Medium / Hard)",
        tracks=("fabric",),
        format="landmarks",
        source="http",
        archives=(Archive("gnd_roxford5k.pkl", url=f"{_REV}/datasets/roxford5k/gnd_roxford5k.pkl", extract=False),),
        requires=("oxford5k",),
        links=(("jpg", "oxford5k/jpg"),),
        layout=(LayoutCheck("jpg/*.jpg", 4993, what="images"), LayoutCheck("gnd_roxford5k.pkl", 1, 1, "ground truth")),
        expected="4,993 database images; 70 queries (removed from the database)",
        licence="research benchmark",
        stand_in="photo-landmarks",
        mirrors=("git uvavision/RerankingTransformer RRT_GLD/data/gnd_roxford5k.pkl",),
    ),
    DatasetSpec(
        name="rparis6k",
        title="Revisited Paris (Easy / Medium / Hard)",
        tracks=("fabric",),
        format="landmarks",
        source="http",
        archives=(Archive("gnd_rparis6k.pkl", url=f"{_REV}/datasets/rparis6k/gnd_rparis6k.pkl", extract=False),),
        requires=("paris6k",),
        links=(("jpg", "paris6k/jpg"),),
        layout=(LayoutCheck("jpg/*.jpg", 6322, what="images"), LayoutCheck("gnd_rparis6k.pkl", 1, 1, "ground truth")),
        expected="6,322 database images; 70 queries",
        licence="research benchmark",
        stand_in="photo-landmarks",
    ),
    DatasetSpec(
        name="revisitop1m",
        title="R1M distractors (+1M)",
        tracks=("fabric", "search"),
        source="http",
        archives=tuple(
            Archive(f"revisitop1m.{i}.tar.gz", url=f"http://ptak.felk.cvut.cz/revisitop/revisitop1m/jpg/revisitop1m.{i}.tar.gz", subdir="jpg")
            for i in range(1, 101)
        ) + (Archive("revisitop1m.txt", url="http://ptak.felk.cvut.cz/revisitop/revisitop1m/revisitop1m.txt", extract=False),),
        layout=(LayoutCheck("jpg/**/*.jpg", 1_000_000, what="images"),),
        expected="about 1M images in 100 parts (very large)",
        licence="research",
    ),
    DatasetSpec(
        name="revisitop-features",
        title="revisitop example R-GeM features (metric regression test)",
        tracks=("fabric",),
        source="http",
        archives=(
            Archive("roxford5k_resnet_rsfm120k_gem.mat", url=f"{_REV}/features/roxford5k_resnet_rsfm120k_gem.mat", extract=False),
            Archive("rparis6k_resnet_rsfm120k_gem.mat", url=f"{_REV}/features/rparis6k_resnet_rsfm120k_gem.mat", extract=False),
        ),
        layout=(LayoutCheck("*_resnet_rsfm120k_gem.mat", 2, 2, "feature files"),),
        expected="must give E/M/H 84.81/64.67/38.47 (ROxf) and 92.12/77.20/56.32 (RPar)",
        licence="research",
        requires=("roxford5k", "rparis6k"),
    ),
    DatasetSpec(
        name="shoev2",
        title="QMUL-Shoe-V2 (fine-grained SBIR)",
        tracks=("sbir",),
        format="sketches",
        source="gdrive",
        archives=(_SKETCHX_ZIP,),
        layout=(
            LayoutCheck("**/ShoeV2/testB/*.png", 200, 200, "test photos"),
            LayoutCheck("**/ShoeV2/testA/*.png", 666, what="test sketches"),
        ),
        expected="2,000 photos, 6,648 sketches; test 666 sketches / 200 photos",
        licence="no licence stated; research only",
        stand_in="sbir-garments",
        alternatives=_QMUL_V2_MIRRORS,
        mirrors=("git AyanKumarBhunia/Baseline_FGSBIR Dataset/ShoeV2/ (photo/ + ShoeV2_Coordinate: "
                 "convert with sketches.coordinates_to_ab)",),
        notes="the zip's top-level folder name is not documented; the reader searches for ShoeV2/",
    ),
    DatasetSpec(
        name="chairv2",
        title="QMUL-Chair-V2 (fine-grained SBIR)",
        tracks=("sbir",),
        format="sketches",
        source="gdrive",
        archives=(_SKETCHX_ZIP,),
        layout=(
            LayoutCheck("**/ChairV2/testB/*.png", 100, 100, "test photos"),
            LayoutCheck("**/ChairV2/testA/*.png", 323, what="test sketches"),
        ),
        expected="400 photos, 1,275 sketches; train 952 / 300, test 323 / 100",
        licence="no licence stated; research only",
        stand_in="sbir-garments",
        alternatives=_QMUL_V2_MIRRORS,
        mirrors=("git AyanKumarBhunia/on-the-fly-FGSBIR ChairV2.zip and ChairV2_Coordinate (convert with "
                 "sketches.coordinates_to_ab)",),
    ),
    DatasetSpec(
        name="clothesv1",
        title="HNU Clothes-V1 (fine-grained SBIR, 7 designers)",
        tracks=("sbir",),
        format="sketches",
        source="gdrive-folder",
        gdrive_folder_id="1630UOV7AFPd2BwjgmZHz8igFAZ68mvnR",
        layout=(
            LayoutCheck("**/trainB/*.png", 380, 380, "train photos"),
            LayoutCheck("**/testB/*.png", 120, 120, "test photos"),
            LayoutCheck("**/trainA/*.png", 925, 925, "train sketches"),
            LayoutCheck("**/testA/*.png", 275, 275, "test sketches"),
        ),
        expected="500 photos, 1,200 sketches; train 925 / 380, test 275 / 120",
        licence="no licence stated (code MIT)",
        stand_in="sbir-garments",
    ),
    DatasetSpec(
        name="qmul-v1",
        title="QMUL V1 shoes / chairs / handbags (Triplet-SN)",
        tracks=("sbir",),
        source="manual",
        layout=(LayoutCheck("**/*.mat", 1, what=".mat databases"),),
        manual_steps=(
            "The original host (eecs.qmul.ac.uk/~qian, sbir_cvpr2016.zip) is broken.",
            "Copy the .mat edge and sketch databases from the git repository yuqian1023/Deep_SBIR_tf, folder data/.",
            "Place them in {dest}/ and run `fgr data verify qmul-v1`.",
        ),
        licence="research",
    ),
    DatasetSpec(
        name="sketchy",
        title="Sketchy (optional FG-SBIR extension)",
        tracks=("sbir",),
        source="manual",
        layout=(LayoutCheck("photo/tx_000100000000/*/*.jpg", 12500, what="photos"),
                LayoutCheck("sketch/tx_000100000000/*/*.png", 75000, what="sketches")),
        manual_steps=(
            "Download rendered_256x256.7z (and info/) from sketchy.eye.gatech.edu (Google Drive links there).",
            "Extract so that {dest}/photo/tx_000100000000/<category>/ and {dest}/sketch/tx_000100000000/<category>/ exist.",
            "Run `fgr data verify sketchy`.",
        ),
        expected="125 categories, 12,500 photos, 75,471 sketches (unconfirmed)",
        licence="research",
    ),
    DatasetSpec(
        name="fashionai",
        title="FashionAI attributes (Tianchi 231671)",
        tracks=("asfr",),
        format="attributes",
        source="manual",
        layout=(
            LayoutCheck("fashionAI_attributes_train*/Images/*_labels/*.jpg", 100_000, what="images"),
            LayoutCheck("fashionAI_attributes_train*/Annotations/label.csv", 1, what="label files"),
            LayoutCheck("query_test.txt", 1, 1, "query list"),
            LayoutCheck("candidate_test.txt", 1, 1, "candidate list"),
        ),
        manual_steps=(
            "Sign in at https://tianchi.aliyun.com/competition/entrance/231671/introduction and accept the competition terms.",
            "Download fashionAI_attributes_train1.zip (~6 GB) and fashionAI_attributes_train2.zip (~7 GB).",
            "Unzip both into {dest}/ (giving {dest}/fashionAI_attributes_train1/Images/...).",
            "Fetch the ASEN split files with `fgr data download asen-splits` and copy data/FashionAI/*.txt from it into {dest}/.",
            "Run `fgr data verify fashionai`.",
        ),
        expected="about 180k images; test 3,600 queries + 14,400 candidates; valid 18,000",
        licence="Tianchi account and competition terms; no redistribution",
        stand_in="asfr-garments",
    ),
    DatasetSpec(
        name="deepfashion",
        title="DeepFashion Category & Attribute Prediction",
        tracks=("asfr",),
        format="attributes",
        source="manual",
        layout=(
            LayoutCheck("img/**/*.jpg", 280_000, what="images"),
            LayoutCheck("Anno/list_attr_img.txt", 1, 1, "attribute labels"),
            LayoutCheck("Eval/list_eval_partition.txt", 1, 1, "partition file"),
        ),
        manual_steps=(
            "Request access at mmlab.ie.cuhk.edu.hk/projects/DeepFashion.html (agreement form) and open the Category and Attribute Prediction benchmark.",
            "Download Img/img.zip, Anno/ (list_attr_cloth.txt, list_attr_img.txt, list_category_*.txt, list_bbox.txt, list_landmarks.txt) and Eval/list_eval_partition.txt.",
            "Unzip img.zip into {dest}/ (giving {dest}/img/...) and copy Anno/ and Eval/ beside it.",
            "Copy data/DeepFashion/*.txt of `fgr data download asen-splits` into {dest}/.",
            "Run `fgr data verify deepfashion`.",
        ),
        expected="289,222 images (long side 300); 1,000 attributes in 5 types",
        licence="non-commercial research and education only",
        stand_in="asfr-garments",
    ),
    DatasetSpec(
        name="darn",
        title="DARN (scraped from a URL list)",
        tracks=("asfr",),
        format="attributes",
        source="manual",
        layout=(LayoutCheck("pic/**/*.jpg", 200_000, what="images"),),
        manual_steps=(
            "Get the DARN URL list linked from the Maryeon/asen README and scrape it into {dest}/pic/ (very slow; about 193 GB reported).",
            "Copy data/DARN/*.txt of `fgr data download asen-splits` into {dest}/.",
            "Run `fgr data verify darn`.",
        ),
        expected="214,619 images still reachable",
        licence="web-scraped; no clear licence",
        stand_in="asfr-garments",
    ),
    DatasetSpec(
        name="zappos50k",
        title="UT-Zappos50K images",
        tracks=("asfr",),
        format="triplets",
        source="http",
        archives=(Archive("ut-zap50k-images.zip", url="http://vision.cs.utexas.edu/projects/finegrained/utzap50k/ut-zap50k-images.zip"),),
        layout=(LayoutCheck("ut-zap50k-images/**/*.jpg", 50_025, 50_025, "images"),),
        expected="50,025 images",
        licence="academic / non-commercial; cite Yu & Grauman CVPR 2014",
        stand_in="asfr-garments",
    ),
    DatasetSpec(
        name="csn-zappos-triplets",
        title="CSN Zappos conditional triplet lists",
        tracks=("asfr",),
        source="http",
        archives=(Archive("csn_zappos_triplets.zip", url="https://vision.cornell.edu/se3/wp-content/uploads/2019/05/csn_zappos_triplets.zip"),),
        layout=(LayoutCheck("**/tripletlists/*_tripletlist_*.txt", 12, 12, "triplet lists"),
                LayoutCheck("**/filenames.json", 1, 1, "file list")),
        expected="train 200k, val 80k, test 160k triplets over 4 conditions",
        licence="research",
        requires=("zappos50k",),
    ),
    DatasetSpec(
        name="asen-splits",
        title="ASEN / ASEN++ split and meta files (FashionAI, DARN, DeepFashion)",
        tracks=("asfr",),
        source="gdrive",
        archives=(Archive("asenpp_data.zip", gdrive_id="1KUkwqdZxjmDL-ixCcIX8GbsnUFqqcpJH"),),
        layout=(LayoutCheck("**/meta.json", 1, what="meta files"),
                LayoutCheck("**/FashionAI/query_test.txt", 1, 1, "FashionAI query list")),
        expected="data/{FashionAI,DARN,DeepFashion}/ split files and data/meta.json (11 MB)",
        licence="the ASEN authors' files",
        mirrors=("gdrive 1_Cyo-IkHYU977bneTXaMC_f63e3vLfSA (meta_data.tar.gz)",),
    ),
    DatasetSpec(
        name="glove-100-angular",
        title="ANN-Benchmarks glove-100-angular",
        tracks=("search",),
        source="http",
        archives=(Archive("glove-100-angular.hdf5", url="http://ann-benchmarks.com/glove-100-angular.hdf5", extract=False),),
        layout=(LayoutCheck("glove-100-angular.hdf5", 1, 1, "HDF5 file"),),
        expected="1,183,514 train / 10,000 test, top-100 ground truth",
        licence="per dataset",
    ),
    DatasetSpec(
        name="sift-128-euclidean",
        title="ANN-Benchmarks sift-128-euclidean",
        tracks=("search",),
        source="http",
        archives=(Archive("sift-128-euclidean.hdf5", url="http://ann-benchmarks.com/sift-128-euclidean.hdf5", extract=False),),
        layout=(LayoutCheck("sift-128-euclidean.hdf5", 1, 1, "HDF5 file"),),
        expected="1,000,000 train / 10,000 test, top-100 ground truth",
        licence="per dataset",
    ),
]:
    register(_spec)


def get(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise FgrError(f"unknown dataset {name!r}; `fgr data list` shows the {len(DATASETS)} known ones")
    return DATASETS[name]


def dataset_root(name: str) -> Path:
    return data_dir() / name


@dataclass
class VerifyReport:
    name: str
    root: Path
    found: list[tuple[LayoutCheck, int]]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            parts = ", ".join(f"{n} {c.what or 'files'}" for c, n in self.found)
            return f"{self.name}: ok at {self.root} ({parts})"
        return f"{self.name}: {len(self.problems)} problem(s) at {self.root}: " + "; ".join(self.problems)


def verify_layout(spec: DatasetSpec, root: Path | None = None) -> VerifyReport:
    """Check every layout pattern of ``spec`` under ``root``; say what is missing or miscounted."""
    root = Path(root) if root is not None else dataset_root(spec.name)
    found: list[tuple[LayoutCheck, int]] = []
    problems: list[str] = []
    if not root.is_dir():
        return VerifyReport(spec.name, root, found, [f"folder {root} does not exist"])
    for check in spec.layout:
        n = sum(1 for _ in glob.iglob(os.path.join(glob.escape(str(root)), check.pattern), recursive=True))
        found.append((check, n))
        if n < check.min_count or (check.max_count is not None and n > check.max_count):
            problems.append(f"expected {check.describe()}, found {n}")
    return VerifyReport(spec.name, root, found, problems)


def status(name: str) -> str:
    """'present' when the layout checks pass, else 'missing'."""
    spec = get(name)
    root = dataset_root(name)
    if not root.exists():
        return "missing"
    return "present" if verify_layout(spec, root).ok else "missing"


def require(name: str) -> Path:
    """Return the folder of a real dataset, or stop with one line naming the fix."""
    spec = get(name)
    root = dataset_root(name)
    report = verify_layout(spec, root)
    if report.ok:
        return root
    if spec.source == "manual":
        fix = f"it is a manual download: `fgr data download {name}` prints the steps"
    else:
        fix = f"run `fgr data download {name}`"
    first = report.problems[0]
    raise DatasetMissing(f"dataset {name} is missing or incomplete at {root} ({first}): {fix}")


def manual_steps(name: str) -> list[str]:
    spec = get(name)
    dest = dataset_root(name)
    return [s.format(dest=dest) for s in spec.manual_steps]


def names(*, track: str | None = None, format: str | None = None, synthetic: bool | None = None) -> tuple[str, ...]:
    """The datasets that match every filter given: synthetic generators first, in registration order,
    then real datasets, in registration order.

    ``track``: used by that track; ``format``: read by that reader family (one of :data:`FORMATS`, or
    "" for the datasets no reader of the kit reads); ``synthetic``: True for the generators only, False
    for the real datasets only.
    """
    if format is not None and format != "" and format not in FORMATS:
        raise FgrError(f"unknown dataset format {format!r}; formats are {', '.join(FORMATS)}")

    def keep(tracks: tuple[str, ...], fmt: str) -> bool:
        return (track is None or track in tracks) and (format is None or fmt == format)

    out: list[str] = []
    if synthetic is not False:
        out += [g.name for g in synth.GENERATORS.values() if keep(g.tracks, g.format)]
    if synthetic is not True:
        out += [d.name for d in DATASETS.values() if keep(d.tracks, d.format)]
    return tuple(out)


def is_synthetic(name: str) -> bool:
    """True for a synthetic generator, False for a real dataset; an unknown name stops with the known ones."""
    if name in synth.GENERATORS:
        return True
    if name in DATASETS:
        return False
    raise FgrError(f"unknown dataset {name!r}; `fgr data list` shows the {len(DATASETS) + len(synth.GENERATORS)} "
                   "known ones")


def catalogue() -> list[dict[str, str]]:
    """One row per dataset, real and synthetic, with its status: present / missing / synthetic."""
    rows = []
    for spec in DATASETS.values():
        st = status(spec.name)
        rows.append({"name": spec.name, "status": st, "source": spec.source_text, "tracks": ",".join(spec.tracks),
                     "title": spec.title, "expected": spec.expected, "licence": spec.licence,
                     "stand-in": spec.stand_in})
    for gen in synth.GENERATORS.values():
        made = synth.generated(gen.name)
        st = "synthetic" if made else "missing"
        sizes = ", ".join(f"{m['size']}/seed{m['seed']}" for m in made)
        rows.append({"name": gen.name, "status": st, "source": "synthetic (fgr data synth)",
                     "tracks": ",".join(gen.tracks), "title": gen.description + (f" [generated: {sizes}]" if sizes else ""),
                     "expected": f"sizes: {', '.join(gen.sizes)}", "licence": "generated by the kit",
                     "stand-in": ""})
    return rows
