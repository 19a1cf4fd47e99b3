"""report.json's schema: its version, the JSON Schema it validates against, and the validator.

The schema is semguard/metrics/report_schema.json (a JSON Schema, draft 7 subset). The validator
here is small and self-contained (type, enum, required, properties, patternProperties,
additionalProperties, items, minItems/maxItems, minimum/maximum, local $ref) because jsonschema
is not a dependency (the tests check that both agree). What JSON Schema cannot say is checked
beside it: every FID/KID figure is named after the report's one feature extractor ("fid_judge"),
so numbers from different extractors are never mixed.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from typing import Any

SCHEMA_VERSION = 2


def report_schema() -> dict:
    """The JSON schema of report.json (shipped beside this module)."""
    text = resources.files("semguard.metrics").joinpath("report_schema.json").read_text(encoding="utf-8")
    return json.loads(text)


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(instance: Any, schema: dict | None = None) -> list[str]:
    """Every violation of `schema` (default: the report schema) as 'path: problem' lines."""
    root = schema if schema is not None else report_schema()
    errors: list[str] = []
    _check(instance, root, root, "$", errors)
    if schema is None and isinstance(instance, dict):
        errors += _extractor_errors(instance)
    return errors


def _extractor_errors(report: dict) -> list[str]:
    """What JSON Schema cannot say: every FID/KID figure is named after the report's one extractor."""
    errors = []
    protocol, variants = report.get("protocol"), report.get("variants")
    if not isinstance(protocol, dict) or not isinstance(variants, dict):
        return errors
    extractor = protocol.get("feature_extractor")
    for variant, entry in variants.items():
        if not isinstance(entry, dict):
            continue
        realism = entry.get("realism") if isinstance(entry.get("realism"), dict) else {}
        for where, distance in (("image_distance", entry.get("image_distance")),
                                ("realism.to_paired_truth", realism.get("to_paired_truth"))):
            if not isinstance(distance, dict):
                continue
            if distance.get("feature_extractor") != extractor:
                errors.append(f"$.variants.{variant}.{where}: feature extractor {distance.get('feature_extractor')!r} "
                              f"differs from the protocol's {extractor!r}")
            for key in distance:
                if key.startswith(("fid_", "kid_")) and key not in ("kid_subset_size", "kid_subsets", "fid_unavailable") \
                        and not key.startswith((f"fid_{extractor}", f"kid_{extractor}_")):
                    errors.append(f"$.variants.{variant}.{where}.{key}: figure of another feature extractor "
                                  f"than the protocol's {extractor!r}")
    return errors


def validate_report(report: dict) -> None:
    """Raise ValueError listing the violations when `report` does not fit the schema."""
    errors = schema_errors(report)
    if errors:
        raise ValueError("report does not fit its schema:\n  " + "\n  ".join(errors[:20]))


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported, got {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = target
    return schema


def _check(value: Any, schema: dict, root: dict, path: str, errors: list[str]) -> None:
    schema = _resolve(schema, root)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[kind](value) for kind in kinds):
            errors.append(f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f"{path}: {value} is not a finite number (JSON has no NaN/inf; use null)")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing required key {key!r}")
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for key, item in value.items():
            matched = False
            if key in properties:
                matched = True
                _check(item, properties[key], root, f"{path}.{key}", errors)
            for pattern, sub in patterns.items():
                if re.search(pattern, key):
                    matched = True
                    _check(item, sub, root, f"{path}.{key}", errors)
            if not matched:
                extra = schema.get("additionalProperties", True)
                if extra is False:
                    errors.append(f"{path}: unexpected key {key!r}")
                elif isinstance(extra, dict):
                    _check(item, extra, root, f"{path}.{key}", errors)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                _check(item, schema["items"], root, f"{path}[{index}]", errors)
