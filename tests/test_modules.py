"""The lab's modules in layers: no two import each other, directly or through others
(imports inside functions count: a lazy import still ties two modules together), and none
grows too long to read (docs/modules.md).

Reads the code as text (ast), runs nothing.
"""
import ast
import textwrap

import pytest

from conftest import ROOT

SKIPPED = {"tests", "benchmarks", "docs", "build", "dist"}  # not the lab's modules
AT_MOST_LINES = 800  # a shared module (not a lesson)
TENSORFLOWVISU_BELOW = 600  # the dashboard alone, its pictures and screens elsewhere


def modules(root):
    """{module name: path} of the project's modules: the .py files at the root and in its
    packages, outside tests/, benchmarks/, docs/ and hidden folders."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        folders = path.relative_to(root).parts[:-1]
        if any(part.startswith(".") or part in SKIPPED or part.endswith(".egg-info")
               for part in folders):
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(root):
    """{module: {module it imports: "its file:the line of the first such import"}}, among
    the project's own modules, imports inside functions included."""
    found = modules(root)

    def own(name):  # the project's module an imported name belongs to
        while name:
            if name in found:
                return name
            name = name.rpartition(".")[0]
        return None

    edges = {}
    for module, path in found.items():
        edges[module] = {}
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from . import x, from ..a import b
                    up = package.split(".") if package else []
                    up = up[:len(up) - node.level + 1] if node.level > 1 else up
                    base = ".".join(up + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" if base else a.name for a in node.names]
            else:
                continue
            for name in names:
                target = own(name)
                if target and target != module:
                    edges[module].setdefault(target, f"{path.relative_to(root)}:{node.lineno}")
    return edges


def circles(edges):
    """The groups of modules that import each other, directly or through others (strongly
    connected components of more than one module: Tarjan's algorithm), each named with the
    imports that tie it: "a, b: a.py:1 imports b; b.py:7 imports a"."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [", ".join(group) + ": " + "; ".join(f"{edges[a][b]} imports {b}" for a in group
                                                for b in sorted(edges[a]) if b in group)
            for group in sorted(groups)]


def test_no_two_modules_import_each_other():
    found = circles(imports(ROOT))
    assert not found, "modules that import each other (a circle):\n" + "\n".join(found)


def test_the_walk_sees_every_module_and_the_imports_inside_functions():
    edges = imports(ROOT)
    assert {"plumbing", "lab", "tensorflowvisu", "dashboard_callback",
            "mnist_1.0_softmax"} <= set(edges)
    assert not any(name.startswith(("tests", "benchmarks", "docs")) for name in edges)
    assert edges["plumbing"] == {}, "the bottom layer imports none of the lab's modules"
    # tensorflowvisu imports dashboard_callback inside a function only
    assert "dashboard_callback" in edges["tensorflowvisu"]


@pytest.mark.parametrize("code, circle", [
    ({"a.py": "import b\n", "b.py": "import os\n\ndef f():\n    import a\n"},
     "a, b: a.py:1 imports b; b.py:4 imports a"),
    ({"a.py": "from b import x\n", "b.py": "import c\n", "c.py": "import a.sub\n",
      "d.py": "import a\n"}, "a, b, c: a.py:1 imports b; b.py:1 imports c; c.py:1 imports a"),
    ({"p/__init__.py": "from . import m\n", "p/m.py": "from .. import p\n"},
     "p, p.m: p/__init__.py:1 imports p.m; p/m.py:1 imports p"),
    ({"a.py": "import b\n", "b.py": "import os\n", "tests/t.py": "import a\nimport b\n"}, None),
], ids=["lazy import", "through a third", "package", "none"])
def test_a_circle_is_named_with_its_lines(code, circle, tmp_path):
    for name, text in code.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    assert circles(imports(tmp_path)) == ([circle] if circle else [])


def test_no_shared_module_is_too_long_to_read():
    lengths = {path.name: len(path.read_text(encoding="utf-8").splitlines())
               for name, path in modules(ROOT).items() if not name.startswith("mnist_")}
    assert len(lengths) >= 19
    long = {name: lines for name, lines in lengths.items() if lines > AT_MOST_LINES}
    assert not long, f"over {AT_MOST_LINES} lines: {long}"
    assert lengths["tensorflowvisu.py"] < TENSORFLOWVISU_BELOW, \
        "tensorflowvisu.py is the dashboard: its pictures, screens and figures are modules"
