"""The package's structure, measured: modules, their sizes, the import graph, its cycles and the
imports of the package's own modules made inside functions.

    python tools/structure.py            # a summary
    python tools/structure.py --json     # the same as JSON (tests/test_structure.py reads it)

An import counts as *local* when it sits inside a function or method body; as *top-level* when it
runs at import time (including ``if TYPE_CHECKING`` blocks, which this tool does not treat apart).
Only imports of ``fgr_utils`` modules are graphed.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "fgr_utils"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py")) if "__pycache__" not in p.parts}


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: str, path: Path, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported package module, inside a function, line) for every import of the package."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, bool, int]] = []

    def target(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == PACKAGE and (t := target(alias.name)):
                        out.append((t, local, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(mod, is_pkg, child)
                if base.split(".")[0] != PACKAGE:
                    continue
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    t = full if full in known else target(base)
                    if t:
                        out.append((t, local, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def measure() -> dict:
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    local: list[dict] = []
    for mod, path in mods.items():
        for target, inside, line in imports(mod, path, known):
            if target == mod:
                continue
            # importing a package's submodule also runs the package's __init__: an edge to it too
            graph[mod].add(target)
            if inside:
                local.append({"module": mod, "imports": target, "line": line})
    sizes = {m: len(p.read_text().splitlines()) for m, p in mods.items()}
    return {"modules": len(mods), "lines": sum(sizes.values()),
            "largest": sorted(sizes.items(), key=lambda kv: -kv[1])[:10],
            "cycles": cycles(graph), "local_imports": local}


def main() -> int:
    m = measure()
    if "--json" in sys.argv:
        print(json.dumps(m, indent=1))
        return 0
    print(f"modules: {m['modules']} ({m['lines']:,} lines)")
    print("largest: " + ", ".join(f"{name} {n}" for name, n in m["largest"]))
    print(f"import cycles: {len(m['cycles'])}")
    for c in m["cycles"]:
        print(f"  {len(c)} modules: {', '.join(c)}")
    print(f"function-local imports of the package: {len(m['local_imports'])}")
    for row in m["local_imports"]:
        print(f"  {row['module']}:{row['line']} -> {row['imports']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
