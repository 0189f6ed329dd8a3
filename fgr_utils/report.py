"""The profile report: ``runs/<profile>/REPORT.md`` and a self-contained ``REPORT.html``.

Under the title and the wall-time line, the papers' claims tested on the runs (:func:`claims_section`,
from ``claims.yaml``), then a one-screen summary: per track one table of each method's headline
numbers beside the published ones (:func:`summary_table`). Then per track our numbers beside
the published ones in full (:func:`comparisons`, from ``published.yaml``; the summary's numbers come
from the same), and every run of the track: its metrics, one table per protocol, its figures and its
manifest (parameters, seed, device, versions, wall time). The sections are the functions of
:data:`SECTIONS`. The report is built once as a list of blocks and written twice, as Markdown and as
HTML (its inline Markdown rendered, :func:`_inline`), so the two always say the same thing.
``notebooks/90_report.ipynb`` shows the HTML inside JupyterLab.
"""
from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fgr_utils import claims, io
from fgr_utils.data import registry
from fgr_utils.errors import FgrError
from fgr_utils.paths import PACKAGE_DIR, runs_dir
from fgr_utils.results import format_value, load_records, matching_metrics
from fgr_utils.runner import TRACK_ORDER, list_notebooks

PUBLISHED = PACKAGE_DIR / "published.yaml"
REPRODUCE_RECORD = "reproduce.json"
REPORT_TRACK = "report"  # the track of 90_report: it renders the report and is not part of it


# --------------------------------------------------------------------------------------------
# Blocks: the report's content, independent of the format
# --------------------------------------------------------------------------------------------

@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str  # inline markup: `code`, **bold**, _italic_


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    style: str = ""  # the HTML table's class ("summary": narrow columns of numbers after the first two)


@dataclass
class Figure:
    caption: str
    path: str  # relative to the report's folder


@dataclass
class Details:
    summary: str
    blocks: list[Any] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Published numbers beside ours
# --------------------------------------------------------------------------------------------

def published(track: str | None = None) -> dict[str, list[dict]]:
    """The comparison tables of ``published.yaml`` (of one track, or all)."""
    data = yaml.safe_load(PUBLISHED.read_text()) or {}
    if track is None:
        return data
    if track not in data:
        raise FgrError(f"no published numbers for track {track!r}; tracks: {', '.join(sorted(data))}")
    return {track: data[track]}


def _synthetic_names() -> set[str]:
    return set(registry.names(synthetic=True))


def _matches(record: dict, metric: str) -> list[tuple[str, float]]:
    """(dataset, value) of every metric of ``record`` that :func:`matching_metrics` finds."""
    return [(dataset, record["metrics"][name]) for dataset, name in matching_metrics(record, metric)]


def _ours_header(dataset: str | None, synthetic: set[str], *, short: bool = False) -> str:
    if not dataset:
        return "ours"
    kind = ("synthetic" if short else "synthetic stand-in") if dataset in synthetic else "real data"
    return f"ours: {dataset} ({kind})"


def _published_header(dataset: str, *, short: bool = False) -> str:
    return f"published: {dataset}" + ("" if short else " (real data)")


@dataclass
class Comparison:
    """One published table with our numbers: rows x (ours per dataset, published per dataset)."""

    title: str
    protocol: str
    note: str
    ours_columns: list[str]  # datasets of our numbers
    published_columns: list[dict]
    rows: list[dict]  # label, ours {dataset: value}, published [value|None], run, metric
    short: str = ""  # the protocol in a few words (the summary names it on the comparison's first row)

    @staticmethod
    def ours_cell(row: dict, dataset: str | None) -> str:
        """Our number of ``row`` on ``dataset``: ``not run`` when the profile lacks the run, ``–`` when
        the run did not record it. Never a number from elsewhere."""
        if dataset in row["ours"]:
            return format_value(row["ours"][dataset], "fraction")
        return "not run" if row["missing"] else "–"

    @staticmethod
    def published_cell(value: float | None) -> str:
        return f"{value:.2f} %" if value is not None else "–"

    def table(self, synthetic: set[str]) -> Table:
        columns = self.ours_columns or [None]  # no number of ours at all: one column that says why
        header = ["method", *(_ours_header(d, synthetic) for d in columns),
                  *(_published_header(c["dataset"]) for c in self.published_columns)]
        body = [[row["label"], *(self.ours_cell(row, d) for d in columns),
                 *(self.published_cell(v) for v in row["published"])] for row in self.rows]
        return Table(header, body)


def comparisons(track: str, records: list[dict]) -> list[Comparison]:
    """The track's published tables, filled with the metrics of ``records`` (one profile's runs)."""
    by_run = {r["run"]: r for r in records}
    out = []
    for spec in published(track)[track]:
        columns = spec.get("columns", [])
        rows, datasets = [], []
        for row in spec["rows"]:
            values = list(row.get("published", [None] * len(columns)))
            if len(values) != len(columns):
                raise FgrError(f"published.yaml: row {row['label']!r} of {spec['title']!r} has {len(values)} "
                               f"values for {len(columns)} columns")
            ours_spec = row["ours"]
            record = by_run.get(ours_spec["run"])
            ours = dict(_matches(record, ours_spec["metric"])) if record else {}
            datasets += [d for d in ours if d not in datasets]
            rows.append({"label": row["label"], "ours": ours, "published": values, "missing": record is None,
                         "run": ours_spec["run"], "metric": ours_spec["metric"]})
        out.append(Comparison(spec["title"], " ".join(spec["protocol"].split()), " ".join(spec.get("note", "").split()),
                              datasets, columns, rows, spec.get("short") or spec["title"]))
    return out


def _comparison_blocks(comps: list[Comparison], synthetic: set[str]) -> list[Any]:
    blocks: list[Any] = []
    for comp in comps:
        sources = "; ".join(f"{c['dataset']}: {c['source']}" for c in comp.published_columns)
        blocks.append(Para(f"**{comp.title}.** Protocol: {comp.protocol}" + (f" {comp.note}" if comp.note else "") +
                           (f" Sources: {sources}." if sources else "")))
        blocks.append(comp.table(synthetic))
    return blocks


def comparison_blocks(track: str, records: list[dict], synthetic: set[str] | None = None) -> list[Any]:
    """Each published table of ``track`` with ours beside it, its protocol, note and sources above it."""
    synthetic = _synthetic_names() if synthetic is None else synthetic
    return _comparison_blocks(comparisons(track, records), synthetic)


def summary_table(comps: list[Comparison], synthetic: set[str]) -> Table:
    """A track's comparisons as one short table for the report's summary.

    Every row of every comparison, the protocol named in a few words on a comparison's first row, with
    the columns of :meth:`Comparison.table` over all of them (ours per dataset, marked synthetic or
    real; published per dataset), a cell left blank where the row's protocol has no such dataset. The
    same cells as the track's own tables, from the same :func:`comparisons`; shorter headers (the
    summary's first lines say that published numbers are the papers' real data)."""
    ours_columns = list(dict.fromkeys(d for comp in comps for d in comp.ours_columns)) or [None]
    published_columns = list(dict.fromkeys(c["dataset"] for comp in comps for c in comp.published_columns))
    header = ["protocol", "method", *(_ours_header(d, synthetic, short=True) for d in ours_columns),
              *(_published_header(d, short=True) for d in published_columns)]
    body = []
    for comp in comps:
        for i, row in enumerate(comp.rows):
            if comp.ours_columns:
                ours = [comp.ours_cell(row, d) if d in comp.ours_columns else "" for d in ours_columns]
            else:  # no number of ours under this protocol at all: every column of ours says why
                ours = [comp.ours_cell(row, None)] * len(ours_columns)
            pub = {c["dataset"]: comp.published_cell(v) for c, v in zip(comp.published_columns, row["published"])}
            body.append([comp.short if i == 0 else "", row["label"], *ours,
                         *(pub.get(d, "") for d in published_columns)])
    return Table(header, body, style="summary")


def show_comparisons(track: str, records: list[dict]):
    """The published tables of ``track`` with ours beside them, for display in a notebook."""
    from IPython.display import HTML

    return HTML(to_html(comparison_blocks(track, records), Path("."), standalone=False))


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

def _notebooks() -> dict[str, Any]:
    try:
        return {nb.stem: nb for nb in list_notebooks()}
    except FgrError:
        return {}


def _records(profile: str, notebooks: dict[str, Any]) -> list[dict]:
    """The profile's finished runs, less the report notebook's own."""
    return [r for r in load_records(profile) if getattr(notebooks.get(r["notebook"]), "track", "") != REPORT_TRACK]


def reproduction_record(profile: str) -> dict | None:
    """What the last ``fgr reproduce`` of the profile did (wall time, runs executed and up to date)."""
    path = runs_dir() / profile / REPRODUCE_RECORD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_reproduction_record(profile: str, summary, seconds: float, track: str | None, seeds: int = 1,
                              ablations: bool = False) -> None:
    io.write_json(runs_dir() / profile / REPRODUCE_RECORD, {
        "profile": profile, "track": track, "seeds": seeds, "ablations": ablations, "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "executed": [{"run": name, "seconds": round(s, 1)} for name, s in summary.executed],
        "up_to_date": list(summary.skipped)})


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def _manifest(r: dict) -> Details:
    params = r.get("params", {})
    rows = [["run", f"`{r['run']}`"], ["notebook", f"`{r['notebook']}` (executed copy `{r['run']}/{r['notebook']}.ipynb`)"],
            ["seed", str(r.get("seed"))], ["device", str(r.get("device"))],
            ["wall time", f"{r.get('seconds') or 0:.1f} s" + (f", {r['processes']} processes" if r.get("processes") else "")],
            ["started / finished", f"{r.get('started', '?')} / {r.get('finished', '?')}"],
            ["git commit", f"`{str(r.get('git_commit'))[:12]}`" + (" (uncommitted changes)" if r.get("git_dirty") else "")],
            ["parameters", ", ".join(f"`{k}={v!r}`" for k, v in sorted(params.items())) or "–"],
            ["datasets", "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "root")
                                   for name, info in r.get("datasets", {}).items()) or "–"],
            ["notes", ", ".join(f"{k}: `{json.dumps(v, default=str)}`" for k, v in r.get("notes", {}).items()) or "–"],
            ["versions", ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items()) or "–"]]
    return Details(f"manifest of {r['run']}", [Table(["field", "value"], rows)])


#: A run's metric table longer than this (00_datasets' dataset counts: over 50 rows) is shown
#: collapsed, in a ``<details>`` block, so that it does not push the tracks a screen further down.
LONG_TABLE_ROWS = 25


def _metric_tables(r: dict) -> list[Any]:
    info = r.get("metric_info", {})
    groups: dict[str, list[str]] = {}
    for name in r.get("metrics", {}):
        groups.setdefault(info.get(name, {}).get("protocol", "unspecified"), []).append(name)
    out: list[Any] = []
    for protocol, names in sorted(groups.items()):
        table = Table(["metric", "value", "dataset", "split"],
                      [[name, format_value(r["metrics"][name], info.get(name, {}).get("unit", "value")),
                        info.get(name, {}).get("dataset", ""), info.get(name, {}).get("split", "")]
                       for name in names])
        if len(names) > LONG_TABLE_ROWS:
            out.append(Details(f"Protocol: {protocol} ({len(names)} metrics)", [table]))
        else:
            out += [Para(f"Protocol: {protocol}"), table]
    return out


@dataclass
class ReportContext:
    """What every section of a report reads: the profile's finished runs and what they are."""

    profile: str
    records: list[dict]
    notebooks: dict[str, Any]
    synthetic: set[str]
    comparisons: dict[str, list[Comparison]]  # per track of published.yaml, filled with ``records``

    def track_of(self, r: dict) -> str:
        return getattr(self.notebooks.get(r["notebook"]), "track", "other")

    def by_track(self) -> dict[str, list[dict]]:
        """The runs per track, in the kit's track order."""
        groups: dict[str, list[dict]] = {}
        for r in self.records:
            groups.setdefault(self.track_of(r), []).append(r)
        order = [t for t in TRACK_ORDER if t in groups] + sorted(t for t in groups if t not in TRACK_ORDER)
        return {t: groups[t] for t in order}


def _track_heading(track: str) -> str:
    return f"Track: {track}"


def overview_section(ctx: ReportContext) -> list[Any]:
    """The line under the title: runs, commit, and the wall time of the last reproduction."""
    records, profile = ctx.records, ctx.profile
    commits = sorted({str(r.get("git_commit"))[:12] for r in records})
    total = sum(r.get("seconds") or 0 for r in records)
    repro = reproduction_record(profile)
    summary = [f"{len(records)} runs, git commit {', '.join(f'`{c}`' for c in commits)}; "
               f"report written {time.strftime('%Y-%m-%d %H:%M')}."]
    if repro:
        scope = (f"`fgr reproduce --profile {profile}" + (f" --track {repro['track']}" if repro.get("track") else "")
                 + (f" --seeds {repro['seeds']}" if repro.get("seeds", 1) > 1 else "")
                 + (" --ablations" if repro.get("ablations") else "") + "`")
        summary.append(f"**Wall time of the last {scope}: {_minutes(repro['seconds'])}**, "
                       f"{len(repro['executed'])} runs executed and {len(repro['up_to_date'])} up to date "
                       f"(finished {repro['finished']}).")
    summary.append(f"The runs' own wall times add up to {_minutes(total)}.")
    return [Para(" ".join(summary))]


def claims_section(ctx: ReportContext) -> list[Any]:
    """The papers' claims on this profile's runs (:mod:`fgr_utils.claims`): the paper's numbers, ours,
    the difference with its paired bootstrap interval, the verdict; then what differs from the paper
    where a claim does not hold."""
    results = claims.evaluate(ctx.profile)
    tally = ", ".join(f"{n} {v}" for v, n in claims.counts(results).items())
    blocks: list[Any] = [Heading(2, "Claims"), Para(
        f"The papers' claims ({tally}), declared in `fgr_utils/{claims.CLAIMS.name}` and printed by "
        f"`fgr claims --profile {ctx.profile}`. A claim compares method a with method b on the same test "
        "queries. **a - b** carries a 95 % paired bootstrap interval over those queries (and over seeds where "
        "the runs were trained with several). The verdict is **holds** when the interval lies on the claimed "
        "side of 0, **contradicted** when it lies entirely on the other side, and **not shown** when it spans "
        "0. Fractions are in percent and their differences in points. The paper's numbers come from its real "
        "data; ours come from the datasets named.")]
    blocks.append(Table(claims.HEADER, claims.rows(results)))
    missed = claims.misses(results)
    if missed:
        blocks.append(Para("**What differs from the papers**, where a claim does not hold: " +
                           " ".join(f"_{cid}_: {why}" for cid, why in missed)))
    return blocks


def ablations_section(ctx: ReportContext) -> list[Any]:
    """The kit's ablations (``ablations.yaml``) where the profile has at least one of their runs: each
    method against itself with one component switched off, which is what explains a claim's verdict."""
    results = claims.evaluate(ctx.profile, claims.ABLATIONS)
    if all(r.verdict == claims.NOT_RUN for r in results):
        return []
    tally = ", ".join(f"{n} {v}" for v, n in claims.counts(results).items())
    rows = [[*row[:1], f"`{r.claim['explains']}`" if r.claim.get("explains") else "–", *row[2:]]
            for r, row in zip(results, claims.rows(results))]
    return [Heading(2, "Ablations"), Para(
        f"Why the claims come out as they do ({tally}), declared in `fgr_utils/{claims.ABLATIONS.name}`, "
        f"printed by `fgr claims --ablations --profile {ctx.profile}`, made by `fgr reproduce --ablations`. "
        "a is the full method, b the same method with one component switched off or another budget; "
        "**holds** says the component helps on these data, **contradicted** that switching it off helps."),
        Table([claims.HEADER[0], "explains", *claims.HEADER[2:]], rows)]


def summary_section(ctx: ReportContext) -> list[Any]:
    """Per track of ``published.yaml``, one table: each method's headline numbers beside the published
    ones, the protocol named on each row (:func:`summary_table`)."""
    used = sorted({i.get("dataset") for r in ctx.records for i in r.get("metric_info", {}).values()
                   if i.get("dataset")})
    syn = [d for d in used if d in ctx.synthetic]
    real = [d for d in used if d not in ctx.synthetic]
    blocks: list[Any] = [Heading(2, "Summary"), Para(
        "Ours: " + (f"synthetic stand-ins generated by the kit ({', '.join(syn)})" if syn else "") +
        ("; " if syn and real else "") + (f"real datasets ({', '.join(real)})" if real else "") +
        ". Published numbers come from the papers' real data. A protocol holds for the rows below it up to "
        "the next one; the track's section states it in full, with its sources. `not run`: the profile has "
        "no such run; –: no such number; blank: the row's protocol has no such column.")]
    run_tracks = {ctx.track_of(r) for r in ctx.records}
    for track, comps in ctx.comparisons.items():
        heading = _track_heading(track)
        link = f" ([protocols and runs](#{_slug(heading)}))" if track in run_tracks else " (no run of this track)"
        blocks += [Para(f"**{track}**{link}"), summary_table(comps, ctx.synthetic)]
    return blocks


def tracks_section(ctx: ReportContext) -> list[Any]:
    """Per track: its published tables in full, then every run (metrics, figures, manifest)."""
    blocks: list[Any] = []
    for track, runs in ctx.by_track().items():
        blocks.append(Heading(2, _track_heading(track)))
        if track in ctx.comparisons:
            blocks.append(Heading(3, "Ours beside the published numbers"))
            blocks += _comparison_blocks(ctx.comparisons[track], ctx.synthetic)
        for r in runs:
            nb = ctx.notebooks.get(r["notebook"])
            blocks.append(Heading(3, r["run"]))
            if nb is not None and nb.purpose:
                blocks.append(Para(f"_{nb.purpose}_"))
            blocks += _metric_tables(r)
            if r.get("skipped_images"):
                skipped = r["skipped_images"]
                blocks.append(Para(f"Skipped {len(skipped)} unreadable image(s): " +
                                   io.few((f"`{s['path']}` ({s['reason']})" for s in skipped), 10)))
            for fig in r.get("figures", []):
                blocks.append(Figure(f"{r['run']}: {Path(fig).stem}", f"{r['run']}/{fig}"))
            blocks.append(_manifest(r))
    return blocks


#: The report's sections under its title, in order; each gives its blocks for a :class:`ReportContext`.
SECTIONS: list[Callable[[ReportContext], list[Any]]] = [overview_section, claims_section, ablations_section,
                                                        summary_section, tracks_section]


def context(profile: str) -> ReportContext:
    notebooks = _notebooks()
    records = _records(profile, notebooks)
    tracks = published()
    order = [t for t in TRACK_ORDER if t in tracks] + sorted(t for t in tracks if t not in TRACK_ORDER)
    return ReportContext(profile, records, notebooks, _synthetic_names(),
                         {t: comparisons(t, records) for t in order})


def build(profile: str) -> list[Any]:
    """The report of ``profile`` as blocks: the title, then each of :data:`SECTIONS`."""
    ctx = context(profile)
    blocks: list[Any] = [Heading(1, f"fgr report: profile `{profile}`")]
    if not ctx.records:
        return blocks + [Para(f"No finished runs yet: run `fgr reproduce --profile {profile}`.")]
    for section in SECTIONS:
        blocks += section(ctx)
    return blocks


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Any]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            out += [f"![{b.caption}]({b.path})", ""]
        elif isinstance(b, Details):
            out += [f"<details><summary>{html.escape(b.summary)}</summary>", "", to_markdown(b.blocks).rstrip(),
                    "", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^()\s]+)\)")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w/])_([^_]+)_(?![\w/])")
_HELD = re.compile("\x00([0-9]+)\x00")


def _inline(text: str) -> str:
    """The inline Markdown of a block's text as HTML: `code`, **bold**, _italic_, [text](url).

    The text is escaped first, then converted; code spans and links are held aside as they are found
    (no emphasis inside code, none inside a link's address), so **bold** may hold `code`."""
    held: list[str] = []

    def hold(piece: str) -> str:
        held.append(piece)
        return f"\x00{len(held) - 1}\x00"

    def emphasis(part: str) -> str:
        return _EM.sub(r"<em>\1</em>", _STRONG.sub(r"<strong>\1</strong>", part))

    out = html.escape(str(text).replace("\x00", ""), quote=False)
    out = _CODE.sub(lambda m: hold(f"<code>{m.group(1)}</code>"), out)
    out = _LINK.sub(lambda m: hold(f'<a href="{m.group(2).replace(chr(34), "&quot;")}">{emphasis(m.group(1))}</a>'),
                    out)
    out = emphasis(out)
    while _HELD.search(out):  # a link's text may hold code
        out = _HELD.sub(lambda m: held[int(m.group(1))], out)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


#: Figures larger than this are embedded in the HTML as JPEG (quality 85, at most 1400 px wide):
#: the demo's retrieval grids are photographs of fabrics and garments, which PNG stores at up to
#: 2 MB each. Smaller figures (plots, diagrams) keep their PNG bytes; the run folders keep the originals.
EMBED_PNG_BYTES = 150_000
EMBED_MAX_WIDTH = 1400


def _image_src(path: Path) -> str:
    """A data URL of the figure at ``path`` ("" if it cannot be read)."""
    import io as _io

    from PIL import Image

    try:
        data = path.read_bytes()
        with Image.open(_io.BytesIO(data)) as im:
            im.load()  # a torn file fails here, not in the reader's browser
            if len(data) <= EMBED_PNG_BYTES:
                return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            im = im.convert("RGB")
            if im.width > EMBED_MAX_WIDTH:
                im = im.resize((EMBED_MAX_WIDTH, round(im.height * EMBED_MAX_WIDTH / im.width)),
                               Image.Resampling.LANCZOS)
            buf = _io.BytesIO()
            im.save(buf, "JPEG", quality=85, optimize=True)
    except OSError:  # unreadable, or not an image (PIL's UnidentifiedImageError is an OSError)
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}figure{margin:1em 0}figure img{max-width:100%}
figcaption{color:#555;font-size:.85em}details{margin:.5em 0 1.5em}summary{cursor:pointer;color:#235}
nav li{margin:.1em 0}table.summary{margin:.3em 0 .9em}table.summary th:nth-child(n+3){width:6.5em}"""


def to_html(blocks: list[Any], base: Path, *, standalone: bool = True) -> str:
    """HTML with every figure embedded (base64; large ones as JPEG, see :data:`EMBED_PNG_BYTES`), so the
    file stands alone; ``base``: the report's folder."""

    def render(items: list[Any]) -> list[str]:
        out: list[str] = []
        for b in items:
            if isinstance(b, Heading):
                out.append(f'<h{b.level} id="{_slug(b.text)}">{_inline(b.text)}</h{b.level}>')
            elif isinstance(b, Para):
                out.append(f"<p>{_inline(b.text)}</p>")
            elif isinstance(b, Table):
                head = "".join(f"<th>{_inline(h)}</th>" for h in b.header)
                body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows)
                cls = f' class="{html.escape(b.style)}"' if b.style else ""
                out.append(f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(b, Figure):
                src = _image_src(base / b.path)
                img = (f'<img src="{src}" alt="{html.escape(b.caption)}">' if src
                       else f"<em>missing figure {html.escape(b.path)}</em>")
                out.append(f"<figure>{img}<figcaption>{html.escape(b.caption)}</figcaption></figure>")
            elif isinstance(b, Details):
                out.append(f"<details><summary>{html.escape(b.summary)}</summary>{''.join(render(b.blocks))}</details>")
        return out

    toc = [b for b in blocks if isinstance(b, Heading) and b.level == 2]
    nav = ("<nav><ul>" + "".join(f'<li><a href="#{_slug(h.text)}">{_inline(h.text)}</a></li>' for h in toc)
           + "</ul></nav>") if toc else ""
    body = "\n".join(render(blocks[:1]) + [nav] + render(blocks[1:]))
    if not standalone:
        return _fragment(body)
    title = html.escape(blocks[0].text.replace("`", "")) if blocks and isinstance(blocks[0], Heading) else "fgr report"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head>{_BODY}" + body + f"{_END}</html>\n")


_BODY, _END = "<body>\n", "\n</body>"


def _fragment(body: str) -> str:
    """``body`` as a piece of a page (a notebook's output): the report's style applies inside it only."""
    return f"<div class=\"fgr-report\"><style>{_CSS.replace('body{', '.fgr-report{')}</style>{body}</div>"


def embedded(page: Path) -> str:
    """The written ``REPORT.html`` as a piece of a page, for a notebook to display: its figures are
    taken as embedded there, not read and encoded a second time."""
    text = page.read_text()
    start, end = text.find(_BODY), text.rfind(_END)
    if start < 0 or end < start:
        raise FgrError(f"{page} is not a report written by fgr: write it again with `fgr report`")
    return _fragment(text[start + len(_BODY):end])


def inventory(profile: str) -> dict[str, int]:
    """What the report of ``profile`` holds: runs, figures, and published rows that have ours beside them."""
    records = _records(profile, _notebooks())
    paired = sum(1 for track in published() for comp in comparisons(track, records) for row in comp.rows
                 if row["ours"] and any(v is not None for v in row["published"]))
    return {"runs": len(records), "figures": sum(len(r.get("figures", [])) for r in records),
            "published_rows_with_ours": paired}


def write_report(profile: str) -> tuple[Path, Path]:
    """Write ``REPORT.md`` and ``REPORT.html`` into ``runs/<profile>/``; returns both paths."""
    base = runs_dir() / profile
    blocks = build(profile)
    md, page = base / "REPORT.md", base / "REPORT.html"
    io.write_text(md, to_markdown(blocks))
    io.write_text(page, to_html(blocks, base))
    return md, page
