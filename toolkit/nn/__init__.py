"""Reusable transformer layers of the Llama family (used by the ``llama`` trunk and the split model).

- :class:`RMSNorm`, :class:`RotaryEmbedding` (+ :func:`apply_rotary`)
- :class:`AttentionContext`: positions ``[B,L]``, key padding ``[B,S]``, RoPE ``(cos, sin)``
- :class:`KVCache` of :class:`LayerKV`: ``update(k_new, v_new) -> (k_all, v_all)``
- :class:`DecoderBlock`: ``forward(x, ctx, kv=None)`` = ``attn_inputs`` -> cache ->
  ``toolkit.kernels.attention`` -> ``attn_outputs``
- :class:`Int4Linear`: an ``nn.Linear`` that also runs 4-bit block-quantised weights (GGUF Q4)
  with PyTorch's int4 CPU kernel at inference
- :class:`PanelLinear` (+ :func:`use_panels`): an ``nn.Linear`` whose few-row no-grad CPU calls
  use a column-panel copy of the weight (about 2x faster exact decoding)
"""

from toolkit.nn.block import Attention, BlockConfig, DecoderBlock, SwiGLU
from toolkit.nn.cache import KVCache, LayerKV
from toolkit.nn.context import AttentionContext, positions_and_padding
from toolkit.nn.norm import RMSNorm
from toolkit.nn.gemv import PanelLinear, drop_panels, use_panels
from toolkit.nn.quant import Int4Linear
from toolkit.nn.rope import RotaryEmbedding, apply_rotary, rope_frequencies

__all__ = ["RMSNorm", "RotaryEmbedding", "apply_rotary", "rope_frequencies", "AttentionContext",
           "positions_and_padding", "KVCache", "LayerKV", "BlockConfig", "Attention", "SwiGLU",
           "DecoderBlock", "Int4Linear", "PanelLinear", "use_panels", "drop_panels"]
