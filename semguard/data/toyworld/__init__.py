"""The toy world: a procedural sim-to-real driving world with a semantic and an image gap.

No data set or pretrained weight can be downloaded on a fresh offline machine, so
semguard ships its own two-domain street world (docs/DESIGN.md, "The toy world"):
`layout.py` draws streets from a domain prior (the semantic gap, strength `gap`),
`raster.py` decides what is visible (label, instance and material maps, tight boxes),
`style.py` colours a raster flat-sim or camera-real (the image gap), `world.py` ties them
into `render_sample` and `make_toy_world`, and `overview.py` computes the statistics and
pictures that `semguard data stats` and `semguard data preview` show.
"""

from semguard.data.toyworld.layout import DOMAINS, PICTOGRAMS, domain_prior
from semguard.labels import LIGHT_STATES
from semguard.data.toyworld.style import STYLES
from semguard.data.toyworld.world import (
    INDEX_BASES,
    JUDGE_INDEX_BASE,
    SPLITS,
    VAL_INDEX_BASE,
    ToyWorldDataset,
    make_toy_world,
    render_sample,
)

__all__ = [
    "DOMAINS", "INDEX_BASES", "JUDGE_INDEX_BASE", "LIGHT_STATES", "PICTOGRAMS", "SPLITS", "STYLES", "VAL_INDEX_BASE",
    "ToyWorldDataset", "domain_prior", "make_toy_world", "render_sample",
]
