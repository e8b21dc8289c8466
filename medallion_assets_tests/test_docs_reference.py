"""docs/reference.md lists every key of every metadata model, as the models define them now."""

from medallion_assets.engine.storage.paths import repository_root
from medallion_assets.reference import _IMPLIED, REFERENCE, refresh, sections


def test_the_reference_tables_match_the_models():
    text = (repository_root() / REFERENCE).read_text(encoding="utf-8")
    assert refresh(text) == text, "run: .venv/bin/python -m medallion_assets.reference"


def test_every_field_of_every_metadata_model_is_in_the_reference():
    text = (repository_root() / REFERENCE).read_text(encoding="utf-8")
    for block, models in sections().items():
        assert f"<!-- keys:{block} -->" in text
        for model in models:
            for name, field in model.model_fields.items():
                if name in _IMPLIED.get(model, set()):
                    continue
                assert f"| `{field.alias or name}` |" in text, f"{model.__name__}.{name} is missing from {REFERENCE}"
    for key in ("degenerate_keys", "scd2_date_column", "valid_from_column", "write_pattern", "calendar",
                "unknown_share_overrides", "unknown_share_blocking", "range_column", "full_load",
                "early_arriving_facts", "column_descriptions", "start_date"):
        assert f"| `{key}` |" in text, key
