"""Per-class weights given in configs by class name or train id, resolved to train ids.

Config keys are strings (YAML mapping keys): a train-id name ("traffic sign") or a
train id written as a number ("7"). Anything else is a ConfigError listing valid names.
"""

from __future__ import annotations

from typing import Mapping

import torch

from semguard.errors import ConfigError
from semguard.labels import NAME_TO_TRAIN_ID, NUM_CLASSES, TRAIN_ID_NAMES


def class_id(key: str | int, where: str = "class weights") -> int:
    """A train id from a class name ("car"), an id string ("13") or an int (13)."""
    if isinstance(key, int) and not isinstance(key, bool):
        value = key
    else:
        text = str(key).strip()
        if text in NAME_TO_TRAIN_ID:
            return NAME_TO_TRAIN_ID[text]
        if not text.isdigit():
            raise ConfigError(f"{where}: unknown class '{key}'; valid names: {', '.join(TRAIN_ID_NAMES)} (or ids 0..{NUM_CLASSES - 1})")
        value = int(text)
    if not 0 <= value < NUM_CLASSES:
        raise ConfigError(f"{where}: class id {value} is outside 0..{NUM_CLASSES - 1}")
    return value


def resolve_class_weights(weights: Mapping[str | int, float] | None, where: str = "class weights") -> dict[int, float]:
    """{name or id: weight} -> {train id: weight}; negative weights are a ConfigError."""
    resolved: dict[int, float] = {}
    for key, weight in (weights or {}).items():
        if float(weight) < 0:
            raise ConfigError(f"{where}: weight of '{key}' is {weight}; weights must be >= 0")
        resolved[class_id(key, where)] = float(weight)
    return resolved


def class_weight_vector(weights: Mapping[str | int, float] | None, num_classes: int = NUM_CLASSES,
                        default: float = 1.0, where: str = "class weights") -> torch.Tensor:
    """float [num_classes]: the given weights, `default` for classes not named."""
    vector = torch.full((num_classes,), float(default))
    for cid, weight in resolve_class_weights(weights, where).items():
        vector[cid] = weight
    return vector
