"""The JSON Schemas of schemas/*.json, for validating what the MQTT output publishes."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def validators() -> dict[str, Draft202012Validator]:
    """Validators by `$id`; every schema is checked against the 2020-12 meta-schema first."""
    schemas = [json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.json"))]
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas
    )
    out = {}
    for schema in schemas:
        Draft202012Validator.check_schema(schema)
        out[schema["$id"]] = Draft202012Validator(
            schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
    return out


def validate(payload: dict) -> None:
    """Raise jsonschema.ValidationError unless `payload` fits the schema its `schema` names."""
    validators()[payload["schema"]].validate(payload)
