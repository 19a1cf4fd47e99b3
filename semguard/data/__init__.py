"""Data: the `Sample` type, format loaders, the toy world, paired transforms, batches.

This package knows nothing of models or training.
"""

from semguard.data.sample import Box, Sample

__all__ = ["Box", "Sample"]
