"""Convert between a notebook and a percent-format script, for editing notebooks as text.

    python tools/nbbuild.py notebooks/00_datasets.ipynb /tmp/00_datasets.py   # notebook -> script
    python tools/nbbuild.py /tmp/00_datasets.py notebooks/00_datasets.ipynb   # script -> notebook

Cells start with ``# %%`` (code), ``# %% [markdown]`` or ``# %% tags=["parameters"]``. The first
lines before any cell marker hold ``# fgr: {json}`` with the notebook's track, purpose and
dependencies. Outputs are never written, so the result is stripped by construction.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

_MARK = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def build(src: Path, stem: str) -> nbformat.NotebookNode:
    meta: dict = {}
    cells = []
    kind, tags, buf = None, [], []

    def flush():
        if kind is None:
            return
        text = "\n".join(buf).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.splitlines())
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in src.read_text().splitlines():
        m = _MARK.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            buf = []
        elif kind is None:
            if line.startswith("# fgr:"):
                meta = json.loads(line[len("# fgr:"):])
        else:
            buf.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "fgr", "display_name": "Python (fgr)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["fgr"] = meta
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{stem[:2]}-{i:02d}"
    return nb


def to_script(nb_path: Path) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    lines = [f"# fgr: {json.dumps(nb.metadata.get('fgr', {}))}"]
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        head = "# %%" + (" [markdown]" if cell.cell_type == "markdown" else "")
        head += f" tags={json.dumps(tags)}" if tags else ""
        body = cell.source
        if cell.cell_type == "markdown":
            body = "\n".join(("# " + line) if line else "#" for line in body.splitlines())
        lines += ["", head, body]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    src, dest = Path(sys.argv[1]), Path(sys.argv[2])
    if src.suffix == ".ipynb":
        dest.write_text(to_script(src))
    else:
        nbformat.write(build(src, dest.stem), dest)
    print(f"{src} -> {dest}")
