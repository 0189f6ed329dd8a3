"""The package's structure: no import cycle, no import of the package's own modules inside a function,
and every module named in the README's module table (measured by tools/structure.py)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import structure  # noqa: E402


def test_the_import_graph_has_no_cycle_and_no_function_local_package_import():
    m = structure.measure()
    assert m["cycles"] == []
    assert m["local_imports"] == []


def test_the_measure_sees_cycles_and_local_imports(tmp_path):
    """The checks above can fail: the same analysis finds a planted cycle and a planted local import."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert structure.cycles(graph) == [["a", "b", "c"]]
    src = tmp_path / "mod.py"
    src.write_text("import os\nfrom fgr_utils import io\n\ndef f():\n    from fgr_utils.errors import FgrError\n")
    found = structure.imports("fgr_utils.mod", src, {"fgr_utils", "fgr_utils.io", "fgr_utils.errors"})
    assert found == [("fgr_utils.io", False, 2), ("fgr_utils.errors", True, 5)]


def test_every_module_is_named_in_the_readme():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The helper package"):text.index("## Tests")]
    missing = [name for name in structure.modules()
               if not re.search(rf"\b{re.escape(name.rsplit('.', 1)[-1])}\b", section)]
    assert missing == []
