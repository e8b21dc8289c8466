"""The package's imports run one way only: engine <- shared Dagster helpers <- layers <- orchestration
<- the code location and the command. The engine never imports Dagster.

Module names are read from the source files: shared helpers live in
``common/`` and ``orchestration/`` packages.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medallion_assets"
LAYERS = ("landing", "base", "curated")
RANKS = {
    "engine": 0,
    **dict.fromkeys(("common", "sample", "reference"), 1),
    **dict.fromkeys(LAYERS, 2),
    **dict.fromkeys(("orchestration",), 3),
    **dict.fromkeys(("definitions", "cli", "demo", "preload", "__init__"), 4),
}


def modules() -> dict[str, Path]:
    return {".".join(path.relative_to(PACKAGE).with_suffix("").parts): path for path in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def top(module: str) -> str:
    """``engine.base.load`` -> ``engine``; ``medallion_assets.jobs`` -> ``jobs``."""
    return module.removeprefix("medallion_assets.").split(".")[0]


def test_every_module_has_a_rank():
    assert sorted({top(m) for m in modules()} - set(RANKS)) == []


def test_no_import_runs_upward():
    upward = []
    for module, path in sorted(modules().items()):
        own = top(module)
        for target in sorted(imports(path)):
            if not target.startswith("medallion_assets."):
                continue
            other = top(target)
            if RANKS[other] > RANKS[own] or (own in LAYERS and other in LAYERS and other != own):
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_the_engine_knows_nothing_of_dagster():
    offenders = [
        f"{module} imports {target}"
        for module, path in sorted(modules().items())
        if top(module) == "engine"
        for target in sorted(imports(path))
        if target.split(".")[0].startswith("dagster")
    ]
    assert offenders == []
