"""Scalabel box files (SHIFT det_2d.json, BDD100K det_20): frames of labelled box2d.

`{frames: [{name, videoName?, labels: [{id, category, attributes, box2d: {x1,y1,x2,y2}}]}]}`
or, in BDD100K, a bare list of frames. Scalabel boxes are inclusive (x2 is the last
column), so `inclusive=True` adds 1 to x2 and y2 to make them half-open.
"""

from __future__ import annotations

import json
from pathlib import Path

from semguard.data.mapping import IgnoreReport
from semguard.data.sample import Box
from semguard.data.readers import bad_annotation, read_bytes
from semguard.labels import SCALABEL_CATEGORY_TO_TRAIN

# categories the files use that have no train id: dropped and counted, never an error
KNOWN_UNMAPPED = frozenset({"other vehicle", "other person", "trailer", "caravan"})
LIGHT_COLORS = {"g": "green", "green": "green", "y": "amber", "yellow": "amber", "amber": "amber",
                "r": "red", "red": "red"}


def read_json(ref: str):
    try:
        return json.loads(read_bytes(ref).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad_annotation(ref, f"corrupt JSON ({err}); download or regenerate the file") from None


def read_scalabel_frames(ref: str) -> list[dict]:
    """The frame list of a Scalabel file (dict with 'frames' or a bare list)."""
    data = read_json(ref)
    frames = data.get("frames") if isinstance(data, dict) else data
    if not isinstance(frames, list) or not all(isinstance(f, dict) and "name" in f for f in frames):
        raise bad_annotation(ref, "not a Scalabel file: expected {'frames': [{'name': ..., 'labels': [...]}]} "
                                  "or a list of such frames")
    return frames


def scalabel_boxes(labels: list | None, ref: str, report: IgnoreReport, strict: bool,
                   inclusive: bool = True) -> list[Box]:
    """Boxes (train ids, half-open) from the `labels` of one Scalabel frame.

    Attributes: trafficLightColor -> {"state": "red"|"amber"|"green"} (NA omitted);
    occluded/truncated kept as "true"/"false". Unknown categories: DataError when strict,
    else dropped and counted in `report.dropped_boxes`.
    """
    boxes: list[Box] = []
    for index, entry in enumerate(labels or []):
        box2d = entry.get("box2d") if isinstance(entry, dict) else None
        if box2d is None:
            continue  # polygons, 3D boxes, ... carry no 2D box
        category = str(entry.get("category", "")).strip().lower()
        train_id = SCALABEL_CATEGORY_TO_TRAIN.get(category)
        if train_id is None:
            if strict and category not in KNOWN_UNMAPPED:
                raise bad_annotation(ref, f"label {index} has unknown box category '{category}' (known: "
                                          f"{', '.join(sorted(SCALABEL_CATEGORY_TO_TRAIN))}); load without strict to drop it")
            report.dropped_boxes[category] += 1
            continue
        try:
            x1, y1, x2, y2 = (float(box2d[k]) for k in ("x1", "y1", "x2", "y2"))
        except (KeyError, TypeError, ValueError):
            raise bad_annotation(ref, f"label {index}: box2d must hold numbers x1, y1, x2, y2, got {box2d!r}") from None
        if inclusive:
            x2, y2 = x2 + 1.0, y2 + 1.0
        if x2 <= x1 or y2 <= y1:
            raise bad_annotation(ref, f"label {index}: empty or inverted box2d {box2d!r}; fix or remove the label")
        attributes: dict[str, str] = {}
        for key, value in (entry.get("attributes") or {}).items():
            if key == "trafficLightColor":
                state = LIGHT_COLORS.get(str(value).strip().lower())
                if state:
                    attributes["state"] = state
            elif isinstance(value, (str, bool, int, float)):
                attributes[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
        boxes.append(Box(xyxy=(x1, y1, x2, y2), class_id=train_id, attributes=attributes))
    return boxes


def frame_stem(name: str) -> str:
    return Path(str(name)).with_suffix("").as_posix()
