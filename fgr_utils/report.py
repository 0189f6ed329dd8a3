"""The profile report: ``runs/<profile>/REPORT.md`` and a self-contained ``REPORT.html``.

Per track it puts our numbers beside the published ones (:func:`comparisons`, from
``published.yaml``), then every run of the track: its metrics, one table per protocol, its figures
and its manifest (parameters, seed, device, versions, wall time). The report is built once as a list
of blocks and written twice, as Markdown and as HTML, so the two always say the same thing.
``notebooks/90_report.ipynb`` shows the HTML inside JupyterLab.
"""
from __future__ import annotations

import base64
import html
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fgr_utils import io
from fgr_utils.data import registry
from fgr_utils.errors import FgrError
from fgr_utils.paths import PACKAGE_DIR, runs_dir
from fgr_utils.results import format_value, load_records
from fgr_utils.runner import TRACK_ORDER, check_profile, list_notebooks

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
    """(dataset, value) of every metric of ``record`` named ``metric``, or ``<dataset>/<metric>`` where
    ``<dataset>`` is the dataset the metric was recorded for (not ``s1/map/weighted`` for ``map/weighted``)."""
    out = []
    info = record.get("metric_info", {})
    for name, value in record.get("metrics", {}).items():
        dataset = info.get(name, {}).get("dataset", "")
        if name == metric or (dataset and name == f"{dataset}/{metric}"):
            out.append((dataset, value))
    return out


@dataclass
class Comparison:
    """One published table with our numbers: rows x (ours per dataset, published per dataset)."""

    title: str
    protocol: str
    note: str
    ours_columns: list[str]  # datasets of our numbers
    published_columns: list[dict]
    rows: list[dict]  # label, ours {dataset: value}, published [value|None], run, metric

    def table(self, synthetic: set[str]) -> Table:
        def kind(name: str) -> str:
            return "synthetic stand-in" if name in synthetic else "real data"

        columns = self.ours_columns or [None]  # no number of ours at all: one column that says why
        header = ["method", *(f"ours: {d} ({kind(d)})" if d else "ours" for d in columns),
                  *(f"published: {c['dataset']} (real data)" for c in self.published_columns)]
        body = []
        for row in self.rows:
            ours = [format_value(row["ours"][d], "fraction") if d in row["ours"] else
                    ("not run" if row["missing"] else "–") for d in columns]
            pub = [f"{v:.2f} %" if v is not None else "–" for v in row["published"]]
            body.append([row["label"], *ours, *pub])
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
                              datasets, columns, rows))
    return out


def comparison_blocks(track: str, records: list[dict], synthetic: set[str] | None = None) -> list[Any]:
    """Each published table of ``track`` with ours beside it, its protocol, note and sources above it."""
    synthetic = _synthetic_names() if synthetic is None else synthetic
    blocks: list[Any] = []
    for comp in comparisons(track, records):
        sources = "; ".join(f"{c['dataset']}: {c['source']}" for c in comp.published_columns)
        blocks.append(Para(f"**{comp.title}.** Protocol: {comp.protocol}" + (f" {comp.note}" if comp.note else "") +
                           (f" Sources: {sources}." if sources else "")))
        blocks.append(comp.table(synthetic))
    return blocks


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


def write_reproduction_record(profile: str, summary, seconds: float, track: str | None) -> None:
    io.write_json(runs_dir() / profile / REPRODUCE_RECORD, {
        "profile": profile, "track": track, "seconds": round(seconds, 1),
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


def _metric_tables(r: dict) -> list[Any]:
    info = r.get("metric_info", {})
    groups: dict[str, list[str]] = {}
    for name in r.get("metrics", {}):
        groups.setdefault(info.get(name, {}).get("protocol", "unspecified"), []).append(name)
    out: list[Any] = []
    for protocol, names in sorted(groups.items()):
        out.append(Para(f"Protocol: {protocol}"))
        out.append(Table(["metric", "value", "dataset", "split"],
                         [[name, format_value(r["metrics"][name], info.get(name, {}).get("unit", "value")),
                           info.get(name, {}).get("dataset", ""), info.get(name, {}).get("split", "")]
                          for name in names]))
    return out


def build(profile: str) -> list[Any]:
    """The report of ``profile`` as blocks."""

    notebooks = _notebooks()
    records = _records(profile, notebooks)
    blocks: list[Any] = [Heading(1, f"fgr report: profile `{profile}`")]
    if not records:
        return blocks + [Para(f"No finished runs yet: run `fgr reproduce --profile {profile}`.")]
    synthetic = _synthetic_names()
    used = sorted({i.get("dataset") for r in records for i in r.get("metric_info", {}).values() if i.get("dataset")})
    commits = sorted({str(r.get("git_commit"))[:12] for r in records})
    total = sum(r.get("seconds") or 0 for r in records)
    repro = reproduction_record(profile)
    summary = [f"{len(records)} runs, git commit {', '.join(f'`{c}`' for c in commits)}; "
               f"report written {time.strftime('%Y-%m-%d %H:%M')}."]
    if repro:
        scope = f"`fgr reproduce --profile {profile}" + (f" --track {repro['track']}`" if repro.get("track") else "`")
        summary.append(f"**Wall time of the last {scope}: {_minutes(repro['seconds'])}**, "
                       f"{len(repro['executed'])} runs executed and {len(repro['up_to_date'])} up to date "
                       f"(finished {repro['finished']}).")
    summary.append(f"The runs' own wall times add up to {_minutes(total)}.")
    blocks.append(Para(" ".join(summary)))
    syn = [d for d in used if d in synthetic]
    real = [d for d in used if d not in synthetic]
    blocks.append(Para("Data: " + (f"synthetic stand-ins generated by the kit ({', '.join(syn)})" if syn else "") +
                       ("; " if syn and real else "") + (f"real datasets ({', '.join(real)})" if real else "") +
                       ". Published numbers come from the papers' real data; a column says which is which. "
                       "Fractions are shown as percentages, and every table holds numbers of one protocol only."))
    by_track: dict[str, list[dict]] = {}
    for r in records:
        by_track.setdefault(getattr(notebooks.get(r["notebook"]), "track", "other"), []).append(r)
    order = [t for t in TRACK_ORDER if t in by_track] + sorted(t for t in by_track if t not in TRACK_ORDER)
    tracks = published()
    for track in order:
        blocks.append(Heading(2, f"Track: {track}"))
        if track in tracks:
            blocks.append(Heading(3, "Ours beside the published numbers"))
            blocks += comparison_blocks(track, records, synthetic)
        for r in by_track[track]:
            nb = notebooks.get(r["notebook"])
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


_EMPHASIS = [(re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
             (re.compile(r"(?<![\w/])_([^_]+)_(?![\w/])"), r"<em>\1</em>")]


def _inline(text: str) -> str:
    parts = re.split(r"(`[^`]+`)", html.escape(str(text), quote=False))
    out = []
    for part in parts:  # no emphasis inside code spans
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{part[1:-1]}</code>")
        else:
            for pattern, repl in _EMPHASIS:
                part = pattern.sub(repl, part)
            out.append(part)
    return "".join(out)


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
nav li{margin:.1em 0}"""


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
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
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


def profile_for(run, profile: str = "") -> str:
    """The profile a report notebook shows: ``profile`` if given, else the run's (JupyterLab: demo)."""
    target = profile or (run.profile if run.profile != "interactive" else "demo")
    check_profile(target)
    return target


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
