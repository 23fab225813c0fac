"""Reusable transformer layers of the Llama family (used by the ``llama`` trunk and the split model).

- :class:`RMSNorm`, :class:`RotaryEmbedding` (+ :func:`apply_rotary`)
- :class:`AttentionContext`: positions ``[B,L]``, key padding ``[B,S]``, RoPE ``(cos, sin)``
- :class:`KVCache` of :class:`LayerKV`: ``update(k_new, v_new) -> (k_all, v_all)``
- :class:`DecoderBlock`: ``forward(x, ctx, kv=None)`` = ``attn_inputs`` -> cache ->
  ``toolkit.kernels.attention`` -> ``attn_outputs``
- :class:`Int4Linear`: an ``nn.Linear`` that also runs 4-bit block-quantised weights (GGUF Q4)
  with PyTorch's int4 CPU kernel at inference
- :class:`FastLinear` (+ :func:`use_fast_linears`): an ``nn.Linear`` whose no-grad fp32 CPU calls
  use packed copies of the weight (column panels, oneDNN): about 2x faster exact inference
"""

from toolkit.nn.block import Attention, BlockConfig, DecoderBlock, SwiGLU
from toolkit.nn.cache import KVCache, LayerKV
from toolkit.nn.context import AttentionContext, positions_and_padding
from toolkit.nn.norm import RMSNorm
from toolkit.nn.fast_linear import FastLinear, drop_fast_copies, use_fast_linears
from toolkit.nn.quant import Int4Linear
from toolkit.nn.rope import RotaryEmbedding, apply_rotary, rope_frequencies

__all__ = ["RMSNorm", "RotaryEmbedding", "apply_rotary", "rope_frequencies", "AttentionContext",
           "positions_and_padding", "KVCache", "LayerKV", "BlockConfig", "Attention", "SwiGLU",
           "DecoderBlock", "Int4Linear", "FastLinear", "use_fast_linears", "drop_fast_copies"]
