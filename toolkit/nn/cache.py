"""Key/value caches for incremental decoding, preallocated so a step copies only its new keys."""

from __future__ import annotations

from torch import Tensor


class LayerKV:
    """The cache of one attention layer: keys and values ``[B,Hkv,S,d]``.

    Storage grows geometrically (by doubling, at least ``block`` positions), so appending one
    token costs one small copy; :meth:`update` returns views of the first ``length`` positions.
    """

    def __init__(self, block: int = 256) -> None:
        self.block = block
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.length = 0

    def update(self, k_new: Tensor, v_new: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``k_new, v_new[B,Hkv,L,d]``; return all keys and values ``[B,Hkv,S,d]``."""
        end = self.length + k_new.shape[2]
        if self.k is None or end > self.k.shape[2]:
            self._grow(k_new, end)
        self.k[:, :, self.length:end] = k_new
        self.v[:, :, self.length:end] = v_new
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def _grow(self, like: Tensor, needed: int) -> None:
        cap = max(needed, self.block, 2 * (self.k.shape[2] if self.k is not None else 0))
        b, h, _, d = like.shape
        k = like.new_empty(b, h, cap, d)
        v = like.new_empty(b, h, cap, d)
        if self.k is not None:
            k[:, :, :self.length] = self.k[:, :, :self.length]
            v[:, :, :self.length] = self.v[:, :, :self.length]
        self.k, self.v = k, v

    def select(self, batch_idx: Tensor) -> None:
        """Keep (and reorder) batch rows ``batch_idx[B']`` (beam search, dropping finished rows)."""
        if self.k is not None:
            self.k = self.k.index_select(0, batch_idx)
            self.v = self.v.index_select(0, batch_idx)

    def keys_values(self) -> tuple[Tensor, Tensor] | None:
        """The cached ``(k, v)`` ``[B,Hkv,length,d]`` views, or None when empty."""
        if self.k is None:
            return None
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


class KVCache:
    """One :class:`LayerKV` per layer (``cache.layers[i]``); all layers share one length."""

    def __init__(self, num_layers: int, block: int = 256) -> None:
        self.layers = [LayerKV(block) for _ in range(num_layers)]

    @property
    def length(self) -> int:
        """Number of cached positions (of the first layer; every layer holds the same)."""
        return self.layers[0].length if self.layers else 0

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> LayerKV:
        return self.layers[i]

    def select(self, batch_idx: Tensor) -> "KVCache":
        """Keep (and reorder) batch rows ``batch_idx[B']`` in every layer; returns self."""
        for layer in self.layers:
            layer.select(batch_idx)
        return self

    reorder = select


__all__ = ["LayerKV", "KVCache"]
