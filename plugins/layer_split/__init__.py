"""The ``layer_split`` splitter: a trunk's top blocks split into text and speech branches.

``toolkit.build("splitter", "layer_split", trunk=trunk, split_at=-4, codebook_size=n)``
returns a :class:`LayerSplitModel`, the modality-split model itself.
"""

from plugins.layer_split.model import LayerSplitModel

__all__ = ["LayerSplitModel"]
