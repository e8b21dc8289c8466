"""All metadata of one metadata folder, loaded together and checked against each other.

Each file is validated on its own when it loads (sources, base, curated, project). This module
checks what spans files, when the code location loads:

- every landing object a base table reads is declared in the sources metadata;
- every ``base.<table>`` the curated SQL reads is a declared base table;
- switching something off (``include: false``) switches off what depends on it: base tables
  reading a switched-off object, curated entities reading a switched-off table or mapping keys
  to a switched-off dimension. They are listed in :attr:`ProjectMetadata.left_out`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from medallion_assets.engine.base.model import BaseTable, load_base_tables
from medallion_assets.engine.curated.keys import resolve_key_columns
from medallion_assets.engine.curated.model import CuratedModel, DimensionMeta, FactMeta, load_curated_model
from medallion_assets.engine.curated.sql import output_columns
from medallion_assets.engine.landing.sources import SourceSystem, load_sources
from medallion_assets.engine.metadata import MetadataError, metadata_root
from medallion_assets.engine.project import ProjectSettings, load_project_settings


@dataclass(frozen=True)
class ProjectMetadata:
    root: Path
    settings: ProjectSettings
    sources: dict[str, SourceSystem]
    base_tables: tuple[BaseTable, ...]  # the included ones
    curated: CuratedModel  # without the entities that were left out
    left_out: dict[str, str] = field(default_factory=dict)  # table -> why it was left out


def load_project_metadata(root: Path | None = None) -> ProjectMetadata:
    """Load the folder (default: ``$MEDALLION_METADATA_DIR`` or the shipped sample) and check it."""
    root = Path(root) if root is not None else metadata_root()
    sources_folder, base_folder = root / "sources", root / "base"
    sources = load_sources(sources_folder)
    tables = load_base_tables(base_folder, sources_folder)
    curated = load_curated_model(root / "curated") if (root / "curated").is_dir() else _empty_model(root / "curated")
    left_out: dict[str, str] = {}
    included = _included_base_tables(tables, sources, base_folder=base_folder, left_out=left_out)
    curated = _consistent_curated(curated, declared={t.name for t in tables}, included=included, left_out=left_out)
    return ProjectMetadata(
        root=root,
        settings=load_project_settings(root / "project.yaml"),
        sources=sources,
        base_tables=tuple(included.values()),
        curated=curated,
        left_out=left_out,
    )


def _empty_model(folder: Path) -> CuratedModel:
    return CuratedModel(folder=folder, calendar=None, dimensions={}, facts={})


def _included_base_tables(
    tables: tuple[BaseTable, ...], sources: dict[str, SourceSystem], *, base_folder: Path, left_out: dict[str, str]
) -> dict[str, BaseTable]:
    included: dict[str, BaseTable] = {}
    for table in tables:
        if not table.include:
            left_out[table.name] = "include: false"
            continue
        off = []
        for ref in table.landing:
            system = sources.get(ref.source)
            obj = system.objects.get(ref.object) if system is not None else None
            if obj is None:
                raise MetadataError(
                    f"{base_folder / (table.source + '.yaml')}: table '{table.object}': field 'landing': "
                    f"landing object '{ref.source}/{ref.object}' is not declared in the sources metadata "
                    f"({base_folder.parent / 'sources' / (ref.source + '.yaml')})"
                )
            if not obj.include:
                off.append(f"{ref.source}/{ref.object}")
        if off:
            left_out[table.name] = f"reads landing object {', '.join(off)}, which has include: false"
            continue
        included[table.name] = table
    return included


def _consistent_curated(
    model: CuratedModel, *, declared: set[str], included: dict[str, BaseTable], left_out: dict[str, str]
) -> CuratedModel:
    """Refuse reads of undeclared base tables; leave out entities that depend on what is left out."""
    entities: list[DimensionMeta | FactMeta] = [*model.dimensions.values(), *model.facts.values()]
    for meta in entities:
        for ref in meta.reads:
            if ref.schema == "base" and ref.table not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise MetadataError(
                    f"{meta.sql_path}: reads {ref}, which is not a base table of the metadata (base tables: {known})"
                )
    changed = True
    while changed:  # a fixpoint: leaving one entity out can leave out what reads it
        changed = False
        for meta in entities:
            if meta.table in left_out:
                continue
            reason = _missing_dependency(meta, included=included, left_out=left_out)
            if reason:
                left_out[meta.table] = reason
                changed = True
    dimensions = {n: d for n, d in model.dimensions.items() if d.table not in left_out}
    facts = {n: f for n, f in model.facts.items() if f.table not in left_out}
    return dataclasses.replace(model, dimensions=dimensions, facts=facts)


def _missing_dependency(meta: DimensionMeta | FactMeta, *, included: dict[str, BaseTable], left_out: dict[str, str]) -> str:
    for ref in meta.reads:
        if (ref.schema == "base" and ref.table not in included) or (ref.schema == "curated" and ref.table in left_out):
            return f"reads {ref}, which is left out ({left_out.get(ref.table, 'not included')})"
    if isinstance(meta, FactMeta) and meta.spec.map_keys:
        for name, dimension in meta.dimensions.items():
            if dimension.table in left_out and _maps_to(meta, name):
                return f"maps keys to {dimension.table}, which is left out"
    return ""


def _maps_to(fact: FactMeta, dimension: str) -> bool:
    columns = output_columns(fact.sql) or []
    mappings, _ = resolve_key_columns(columns, fact.dimensions, degenerate=fact.spec.degenerate_keys, strict=False)
    return any(m.dimension == dimension for m in mappings)
