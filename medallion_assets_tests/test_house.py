"""The house rules a newcomer can rely on, read from the source files of ``medallion_assets``:
no import circle (every import, also inside functions), each class name defined once, no module
over 600 lines, no function over 80 and none taking more than five parameters by position."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medallion_assets"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_POSITIONAL = 5  # past that, parameters are keyword-only


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file (a package is its ``__init__.py``)."""
    found = {}
    for path in package.rglob("*.py"):
        parts = (package.name, *path.relative_to(package).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file; ``from pkg import sub``
    counts as an import of ``pkg.sub`` when that is a module, else of ``pkg``."""
    targets: set[str] = set()
    own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own_package.split(".")[: len(own_package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module)
    return {t for t in targets if t in known and t != name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_import_graph_has_no_cycle():
    files = module_files()
    graph = {name: imported_modules(name, path, set(files)) for name, path in files.items()}
    assert import_cycles(graph) == []


def test_each_class_name_is_defined_once():
    where = defaultdict(list)
    for name, path in module_files().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                where[node.name].append(name)
    assert {cls: modules for cls, modules in where.items() if len(modules) > 1} == {}


def test_no_module_over_600_lines_and_no_function_over_80():
    too_long = []
    for name, path in module_files().items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


def test_long_parameter_lists_are_keyword_only():
    offenders = []
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
                if len(positional) > MAX_POSITIONAL:
                    offenders.append(f"{name}.{node.name}: {len(positional)} positional parameters")
    assert offenders == []


def test_the_checks_find_what_they_look_for(tmp_path):
    """The rules above would pass on an empty reading: here each meets its offence."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "a.py").write_text("def f():\n    from pkg.sub.b import g\n    return g\n")
    (package / "sub" / "b.py").write_text("from . import a\n\n\ndef g():\n    return a\n")
    (package / "c.py").write_text("import pkg.sub.a\n")
    files = module_files(package)
    assert set(files) == {"pkg", "pkg.sub", "pkg.sub.a", "pkg.sub.b", "pkg.c"}
    graph = {name: imported_modules(name, path, set(files)) for name, path in files.items()}
    assert graph["pkg.sub.b"] == {"pkg.sub.a"} and graph["pkg.sub.a"] == {"pkg.sub.b"}
    assert import_cycles(graph) == [["pkg.sub.a", "pkg.sub.b"]]
    assert import_cycles({"x": {"y"}, "y": set()}) == []
