"""The label tables against cityscapesScripts' definitions, and the colouriser."""

from __future__ import annotations

import numpy as np
import pytest

from semguard import labels

# (label id, train id) exactly as cityscapesScripts/helpers/labels.py lists them
CITYSCAPES_SCRIPTS = [
    (0, 255), (1, 255), (2, 255), (3, 255), (4, 255), (5, 255), (6, 255), (7, 0), (8, 1),
    (9, 255), (10, 255), (11, 2), (12, 3), (13, 4), (14, 255), (15, 255), (16, 255), (17, 5),
    (18, 255), (19, 6), (20, 7), (21, 8), (22, 9), (23, 10), (24, 11), (25, 12), (26, 13),
    (27, 14), (28, 15), (29, 255), (30, 255), (31, 16), (32, 17), (33, 18),
]


def test_every_cityscapes_label_id_maps_as_cityscapes_scripts_defines():
    ids = np.array([[label_id for label_id, _ in CITYSCAPES_SCRIPTS]], dtype=np.uint8)
    mapped = labels.map_ids(ids, labels.CITYSCAPES_LABEL_TO_TRAIN)
    assert mapped.tolist()[0] == [train_id for _, train_id in CITYSCAPES_SCRIPTS]
    assert mapped.dtype == np.uint8


def test_names_agree_between_tables():
    for label_id, train_id in labels.CITYSCAPES_LABEL_TO_TRAIN.items():
        assert labels.CITYSCAPES_LABEL_ID_NAMES[label_id] == labels.TRAIN_ID_NAMES[train_id]
    assert len(labels.TRAIN_ID_NAMES) == len(labels.TRAIN_ID_COLORS) == labels.NUM_CLASSES == 19


@pytest.mark.parametrize(
    "table, source_name_table",
    [(labels.CARLA_LEGACY_TO_TRAIN, labels.CARLA_LEGACY_NAMES)],
)
def test_carla_legacy_names_match_targets(table, source_name_table):
    expected = {"pedestrian": "person", "vehicle": "car", "road line": "road"}
    for source_id, train_id in table.items():
        name = source_name_table[source_id]
        assert expected.get(name, name) == labels.TRAIN_ID_NAMES[train_id]


def test_carla_0914_follows_train_order_and_road_lines():
    assert labels.CARLA_0914_TO_TRAIN[1] == 0 and labels.CARLA_0914_TO_TRAIN[19] == 18
    assert labels.CARLA_0914_TO_TRAIN[24] == 0 and 20 not in labels.CARLA_0914_TO_TRAIN


def test_tables_are_injective_where_they_should_be():
    assert sorted(labels.SYNTHIA_TO_TRAIN.values()) == list(range(19))
    assert sorted(labels.CITYSCAPES_LABEL_TO_TRAIN.values()) == list(range(19))


def test_colours_round_trip():
    label_map = np.array([list(range(19)) + [255]], dtype=np.uint8)
    colours = labels.colorize(label_map)
    assert colours.shape == (1, 20, 3) and colours.dtype == np.uint8
    assert tuple(colours[0, 13]) == (0, 0, 142)
    assert np.array_equal(labels.decolorize(colours), label_map)


def test_unknown_colour_becomes_ignore():
    colours = np.array([[[1, 2, 3], [128, 64, 128]]], dtype=np.uint8)
    assert labels.decolorize(colours).tolist() == [[255, 0]]


def test_map_ids_handles_wide_ids_and_rejects_negative():
    ids = np.array([[7, 1000]], dtype=np.int32)
    assert labels.map_ids(ids, {7: 0, 1000: 5}).tolist() == [[0, 5]]
    with pytest.raises(ValueError):
        labels.map_ids(np.array([[-1]]), {})
