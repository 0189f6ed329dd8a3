"""The profile report: published numbers beside ours, figures, manifests, Markdown and HTML alike."""
from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from conftest import read_json

from fgr_utils import cli, report, runner
from fgr_utils.errors import FgrError
from fgr_utils.results import Run


def _record(runs: Path, profile: str, notebook: str, name: str, metrics: dict, *, figure: bool = False,
            seconds_params: dict | None = None) -> Path:
    run = Run(notebook=notebook, name=name, profile=profile, dir=runs / profile / name,
              params=seconds_params or {"seed": 3, "epochs": 2}, seed=3, device="cpu")
    run.dir.mkdir(parents=True)
    for metric, (value, dataset, protocol) in metrics.items():
        run.log(metric, value, protocol=protocol, dataset=dataset, split="test")
    if figure:
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        run.save_figure(fig, "curve")
        plt.close(fig)
    run.finish()
    return run.dir


@pytest.fixture
def profile_runs(isolated_dirs):
    runs = isolated_dirs / "runs"
    _record(runs, "smoke", "20_sbir_train", "20_sbir_train-arnet",
            {"acc@1/best": (0.25, "sbir-garments", "Acc@k, best test epoch"),
             "acc@1/last": (0.125, "sbir-garments", "Acc@k, last epoch")}, figure=True)
    _record(runs, "smoke", "30_asfr_train", "30_asfr_train-rpf",
            {"map/weighted": (0.5, "fashionai", "attribute MAP"), "map/macro": (0.4, "fashionai", "attribute MAP"),
             # parts of the method, named like a dataset prefix: never taken for the method's number
             "region/map/weighted": (0.7, "fashionai", "attribute MAP"),
             "s1/map/weighted": (0.6, "fashionai", "attribute MAP")})
    _record(runs, "smoke", "12_landmarks", "12_landmarks",
            {"photo-landmarks/stage1/medium/map": (0.3, "photo-landmarks", "revisited-medium"),
             "sim-revisited/stage1/medium/map": (0.2, "sim-revisited", "revisited-medium")})
    return runs / "smoke"


def test_comparisons_put_ours_beside_published_marked_synthetic_or_real(profile_runs):
    from fgr_utils.results import load_records

    records = load_records("smoke")
    sbir = report.comparisons("sbir", records)[0]
    assert sbir.ours_columns == ["sbir-garments"]
    table = sbir.table({"sbir-garments"})
    assert table.header[1] == "ours: sbir-garments (synthetic stand-in)"
    assert table.header[2:] == ["published: Clothes-V1 (real data)", "published: Shoe-V2 (real data)",
                                "published: Chair-V2 (real data)"]
    basic = next(r for r in table.rows if r[0] == "ARNet Basic, Acc@1")
    assert basic[1:] == ["25.00 %", "94.18 %", "41.23 %", "73.31 %"]
    mstr = next(r for r in table.rows if r[0] == "ARNet + MSTR, Acc@1")
    assert mstr[1] == "not run"  # no such run in the profile: never a number from elsewhere

    asfr = report.comparisons("asfr", records)[0]
    rpf = next(r for r in asfr.table(set()).rows if r[0] == "RPF")
    assert asfr.table(set()).header[1] == "ours: fashionai (real data)" and rpf[1:] == ["50.00 %", "70.11 %", "10.22 %",
                                                                                        "58.80 %"]
    # a metric recorded per dataset ("<dataset>/stage1/medium/map") gives one column per dataset
    landmarks = next(c for c in report.comparisons("fabric", records) if "Revisited" in c.title)
    assert landmarks.ours_columns == ["photo-landmarks", "sim-revisited"]
    medium = landmarks.table({"photo-landmarks", "sim-revisited"}).rows[0]
    assert medium[1:3] == ["30.00 %", "20.00 %"] and medium[3] == "72.90 %"


def test_every_published_table_is_consistent():
    stems = {nb.stem for nb in runner.list_notebooks()}
    demo_runs = {r.name for nb in runner.list_notebooks() for r in runner.plan_runs(nb, "demo")}
    for track, tables in report.published().items():
        assert track in runner.TRACK_ORDER
        for comp in report.comparisons(track, []):  # raises on a row with the wrong number of values
            assert comp.protocol and comp.rows and 0 < len(comp.short) <= 45  # short: named in the summary
            for row in comp.rows:
                assert row["run"].split("-")[0] in stems
                assert row["run"] in demo_runs, f"{row['run']} is not a run of the demo profile"
                assert all(v is None or 0 < v <= 100 for v in row["published"])


def test_report_markdown_and_html_hold_the_same_content(profile_runs):
    from fgr_utils.runner import ReproduceSummary

    summary = ReproduceSummary(executed=[("20_sbir_train-arnet", 61.0)], skipped=["30_asfr_train-rpf"])
    report.write_reproduction_record("smoke", summary, 125.0, None)
    md_path, html_path = report.write_report("smoke")
    md, page = md_path.read_text(), html_path.read_text()

    assert "Wall time of the last `fgr reproduce --profile smoke`: 2.1 min (125 s)" in md
    assert "1 runs executed and 1 up to date" in md
    for track in ("fabric", "sbir", "asfr"):
        assert f"## Track: {track}" in md
    assert "### Ours beside the published numbers" in md
    assert "| ARNet Basic, Acc@1 | 25.00 % | 94.18 % | 41.23 % | 73.31 % |" in md
    assert "![20_sbir_train-arnet: curve](20_sbir_train-arnet/figures/curve.png)" in md
    assert "`epochs=2`" in md and "| seed | 3 |" in md and "| wall time |" in md

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.images, self.text, self.cells = [], [], []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.images.append(dict(attrs)["src"])

        def handle_data(self, data):
            self.text.append(data)

    parser = Collect()
    parser.feed(page)
    text = " ".join(parser.text)
    assert "Wall time of the last" in text and "94.18 %" in text and "ours: sbir-garments (synthetic stand-in)" in text
    assert len(parser.images) == 1 and parser.images[0].startswith("data:image/png;base64,")
    png = base64.b64decode(parser.images[0].split(",", 1)[1])
    assert png == (profile_runs / "20_sbir_train-arnet/figures/curve.png").read_bytes()  # embedded, self-contained
    assert page.count("<h3") == md.count("\n### ") + md.startswith("### ")


def test_a_notebook_shows_the_written_page_as_it_is(profile_runs, tmp_path):
    md, page = report.write_report("smoke")
    shown = report.embedded(page)
    again = report.to_html(report.build("smoke"), profile_runs, standalone=False)
    written = re.compile(r"report written [0-9-]+ [0-9:]+")  # the minute may turn between the two
    assert written.sub("", shown) == written.sub("", again) and written.search(shown)
    assert shown.startswith('<div class="fgr-report"><style>.fgr-report{') and "<body" not in shown
    assert shown.count("data:image/png;base64,") == 1  # the figure as embedded in the page
    (tmp_path / "other.html").write_text("<p>not a report</p>")
    with pytest.raises(FgrError, match="not a report written by fgr: write it again with `fgr report`"):
        report.embedded(tmp_path / "other.html")


def test_markup_is_escaped_in_html():
    blocks = [report.Heading(1, "r"), report.Para("a <b> & `x<y>` **bold** _it_ snake_case_name"),
              report.Table(["h"], [["<td>"]])]
    page = report.to_html(blocks, Path("."))
    assert "a &lt;b&gt; &amp; <code>x&lt;y&gt;</code> <strong>bold</strong> <em>it</em> snake_case_name" in page
    assert "<td>&lt;td&gt;</td>" in page
    assert "snake\\_case" not in report.to_markdown(blocks) and "| &lt;td&gt;" not in report.to_markdown(blocks)


class _Text(HTMLParser):
    """The text nodes of a page (less its style sheet), each with the elements it sits in."""

    def __init__(self):
        super().__init__()
        self.stack, self.nodes = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if "style" not in self.stack:
            self.nodes.append((tuple(self.stack), data))


def _text_nodes(page: str) -> list[tuple[tuple[str, ...], str]]:
    parser = _Text()
    parser.feed(page)
    return parser.nodes


#: Markdown left in a text node: bold, a code span's backtick, a link's "](", an _italic_ span
LEFT_MARKDOWN = re.compile(r"\*\*|`|\]\(|(?<![\w/])_[^_\s][^_]*_(?![\w/])")


def test_inline_markdown_becomes_html_and_nothing_is_left_in_the_text():
    blocks = [report.Heading(1, "r `p`"),
              report.Para("**Wall time of the last `fgr reproduce --profile smoke`: 2.1 min** and _done_; "
                          "see [the track](#track-sbir) or [`x<y>`](https://example.org/a?b=1&c=2)."),
              report.Table(["**h**"], [["`a_b` and **b _c_**"]])]
    page = report.to_html(blocks, Path("."))
    assert ("<p><strong>Wall time of the last <code>fgr reproduce --profile smoke</code>: 2.1 min</strong> and "
            "<em>done</em>; see <a href=\"#track-sbir\">the track</a> or "
            "<a href=\"https://example.org/a?b=1&amp;c=2\"><code>x&lt;y&gt;</code></a>.</p>") in page
    assert "<td><code>a_b</code> and <strong>b <em>c</em></strong></td>" in page
    assert "<th><strong>h</strong></th>" in page
    assert not [text for _, text in _text_nodes(page) if LEFT_MARKDOWN.search(text)]
    md = report.to_markdown(blocks)  # the Markdown keeps its markup
    assert "**Wall time of the last `fgr reproduce --profile smoke`: 2.1 min**" in md
    assert "[the track](#track-sbir)" in md


def _datasets_run(runs: Path, n: int = 30) -> None:
    _record(runs, "smoke", "00_datasets", "00_datasets",
            {f"toy-set/count_{i:02d}": (i / 100, "toy-set", "dataset count") for i in range(n)})


def test_report_opens_with_a_summary_and_renders_its_markdown(profile_runs):
    from fgr_utils.runner import ReproduceSummary

    _datasets_run(profile_runs.parent)
    report.write_reproduction_record("smoke", ReproduceSummary(executed=[("x", 1.0)], skipped=[]), 125.0, None)
    md_path, html_path = report.write_report("smoke")
    md, page = md_path.read_text(), html_path.read_text()

    # the summary follows the wall-time line and comes before every track and run
    assert md.index("Wall time of the last") < md.index("\n## Summary\n") < md.index("\n## Track: ")
    assert md.index("\n## Summary\n") < min(md.index(f"\n### {r}\n") for r in ("00_datasets", "20_sbir_train-arnet"))
    assert page.index("Wall time of the last") < page.index('<h2 id="summary">') < page.index('<h2 id="track-')
    assert page.index('<h2 id="summary">') < page.index("<h3")
    summary = md[md.index("\n## Summary\n"):md.index("\n## Track: ")]
    # per track one table, ours beside the published numbers, the protocol named; never a number from elsewhere
    assert re.findall(r"^\*\*(\w+)\*\* \(", summary, flags=re.M) == ["fabric", "sbir", "asfr", "search"]
    assert summary.count("| protocol | method |") == 4 and summary.count("\n|") <= 40
    assert ("| protocol | method | ours: sbir-garments (synthetic) | published: Clothes-V1 | published: Shoe-V2 "
            "| published: Chair-V2 |") in summary
    assert ("| Acc@k, best test epoch (selected on test) | ARNet Basic, Acc@1 | 25.00 % | 94.18 % | 41.23 % "
            "| 73.31 % |") in summary
    assert "|  | ARNet + MSTR, Acc@1 | not run | 95.27 % | 42.91 % | 75.45 % |" in summary
    assert "| MAP, query-weighted | global floor (attribute-agnostic) | not run | – | – | – |  |" in summary
    assert "|  | RPF | 50.00 % | 70.11 % | 10.22 % | 58.80 % |  |" in summary
    assert "| ours: photo-landmarks (synthetic) | ours: sim-revisited (synthetic) |" in summary
    assert ("| revisitop mAP (published: other methods) | global, Medium (DINOv2 ViT-g frozen, paper Table 9) "
            "| 30.00 % | 20.00 % |  |  | 72.90 % | – |") in summary
    assert "| full-ranking AP | stage 1: global descriptor | not run | not run |" in summary
    assert "**sbir** ([protocols and runs](#track-sbir))" in summary and "**search** (no run of this track)" in summary
    assert "| recall@10 against exact search | fastest index with recall@10 >= 0.95 | not run |" in summary
    assert '<h2 id="track-sbir">' in page and '<a href="#track-sbir">protocols and runs</a>' in page

    # the long dataset-count table is collapsed, in both formats
    opening = "<details><summary>Protocol: dataset count (30 metrics)</summary>"
    closing = md.index("</details>", md.index(opening))
    assert md.index(opening) < md.index("| toy-set/count_00 |") < md.index("| toy-set/count_29 |") < closing
    assert "Protocol: dataset count\n" not in md
    nodes = _text_nodes(page)
    counts = [stack for stack, text in nodes if text.startswith("toy-set/count_")]
    assert len(counts) == 30 and all("details" in stack and "table" in stack for stack in counts)

    # no literal Markdown left in the page: bold, code and links are elements
    assert not [text for _, text in nodes if LEFT_MARKDOWN.search(text)]
    assert "<strong>Wall time of the last <code>fgr reproduce --profile smoke</code>: 2.1 min (125 s)</strong>" in page
    assert "<code>epochs=2</code>" in page and "<strong>Fine-grained SBIR, best test epoch.</strong>" in page


def test_a_leading_section_is_one_more_builder(profile_runs, monkeypatch):
    def claims(ctx):
        return [report.Heading(2, "Claims"), report.Para(f"{len(ctx.records)} runs read.")]

    monkeypatch.setattr(report, "SECTIONS", [claims, *report.SECTIONS])
    md = report.to_markdown(report.build("smoke"))
    assert md.index("# fgr report") < md.index("## Claims\n\n3 runs read.") < md.index("runs, git commit")
    assert md.index("runs, git commit") < md.index("## Summary") < md.index("## Track: sbir")


def test_summary_numbers_are_the_track_tables_numbers(profile_runs):
    from fgr_utils.results import load_records

    comps = report.comparisons("sbir", load_records("smoke"))
    summary = report.summary_table(comps, {"sbir-garments"})
    detail = [row for comp in comps for row in comp.table({"sbir-garments"}).rows]
    assert [row[1:] for row in summary.rows] == detail  # the same cells, after the protocol's name
    assert [row[0] for row in summary.rows if row[0]] == [c.short for c in comps]


def test_report_without_runs_says_what_to_do(isolated_dirs):
    md, _ = report.write_report("smoke")
    assert "No finished runs yet: run `fgr reproduce --profile smoke`." in md.read_text()


def test_unknown_track_is_one_line():
    with pytest.raises(FgrError, match="no published numbers for track 'nope'; tracks: asfr, fabric"):
        report.published("nope")


@pytest.mark.notebook
def test_90_report_notebook_writes_and_shows_the_report(profile_runs, capsys):
    assert cli.main(["run", "90_report", "--profile", "smoke", "--no-progress"]) == 0
    rec = read_json(profile_runs / "90_report/metrics.json")
    assert rec["metrics"]["report/runs"] == 3 and rec["metrics"]["report/figures"] == 1
    assert rec["metrics"]["report/published_rows_with_ours"] == 5  # arnet best+last, rpf weighted+macro, landmarks
    md = (profile_runs / "REPORT.md").read_text()
    assert "90_report" not in re.findall(r"^### (.*)$", md, flags=re.M)  # the report is not part of itself
    executed = (profile_runs / "90_report/90_report.ipynb").read_text()
    assert "Ours beside the published numbers" in executed and "data:image/png;base64," in executed


def test_fgr_report_command(profile_runs, capsys):
    assert cli.main(["report", "--profile", "smoke"]) == 0
    assert capsys.readouterr().out.strip() == f"report: {profile_runs / 'REPORT.md'} and REPORT.html"
    assert (profile_runs / "REPORT.html").stat().st_size > 1000
    assert cli.main(["report", "--profile", "nope"]) == 1
    assert capsys.readouterr().err.strip() == "fgr: unknown profile 'nope'; known: smoke, demo, paper"


def test_large_figures_are_embedded_as_smaller_jpegs_and_broken_ones_are_named(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 2000, 3), dtype=np.uint8)).save(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > report.EMBED_PNG_BYTES
    (tmp_path / "torn.png").write_bytes((tmp_path / "grid.png").read_bytes()[:100])
    blocks = [report.Heading(1, "r"), report.Figure("grid", "grid.png"), report.Figure("torn", "torn.png")]
    page = report.to_html(blocks, tmp_path)
    src = re.search(r'<img src="data:image/jpeg;base64,([^"]+)" alt="grid">', page).group(1)
    with Image.open(io.BytesIO(base64.b64decode(src))) as im:
        assert im.format == "JPEG" and im.size == (report.EMBED_MAX_WIDTH, 210)  # aspect ratio kept
    assert "<em>missing figure torn.png</em>" in page
