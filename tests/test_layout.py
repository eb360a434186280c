"""The package's shape: core/ experiments/ tools/, no import cycle, nothing inside imports the
package face, and the core does not reach up into experiments or tools."""
import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "mtl_utils"


def import_graph():
    modules = {}
    for f in ROOT.rglob("*.py"):
        name = ".".join(f.relative_to(ROOT.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = f
    graph = collections.defaultdict(set)
    for name, f in modules.items():
        package = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):        # function-level imports count too
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    for candidate in (f"{target}.{alias.name}", target):
                        if candidate in modules:
                            graph[name].add(candidate)
                            break
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                graph[name].update(n for n in names if n == "mtl_utils" or n.startswith("mtl_utils."))
    return modules, graph


def test_no_cycle_and_no_import_of_the_package_face():
    modules, graph = import_graph()
    face = [m for m in modules if m != "mtl_utils" and "mtl_utils" in graph[m]]
    assert face == []
    state, cycles = {}, []

    def visit(u, path):
        state[u] = "open"
        for v in sorted(graph[u]):
            if v == "mtl_utils" or v not in modules:
                continue
            if state.get(v) == "open":
                cycles.append(path[path.index(v):] + [v])
            elif v not in state:
                visit(v, path + [v])
        state[u] = "done"
    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_core_does_not_reach_up():
    modules, graph = import_graph()
    for name in modules:
        if name.startswith("mtl_utils.core."):
            assert not [t for t in graph[name] if t.startswith(("mtl_utils.experiments", "mtl_utils.tools"))], name


def test_three_folders_and_every_module_in_one():
    top = sorted(p.name for p in ROOT.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py", "__main__.py", "_version.py"]
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__" and p.name != "results"} == \
        {"core", "experiments", "tools"}
