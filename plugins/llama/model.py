"""The ``llama`` trunk: a Llama/Mistral/Qwen2/Qwen3 decoder built from :mod:`toolkit.nn` layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from toolkit.registry import API_VERSION
from toolkit.contracts import TextTokenizer, Trunk, TrunkConfig
from toolkit.errors import ToolkitError
from toolkit.nn import (AttentionContext, DecoderBlock, Int4Linear, KVCache, RMSNorm,
                        RotaryEmbedding, positions_and_padding, use_fast_linears)

from plugins.llama.config import LlamaConfig, parse_config

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class LlamaTrunk(Trunk):
    """A Llama-family decoder-only LM (``model_type`` llama, mistral, qwen2, qwen3).

    Build it from a checkpoint (a Hugging Face folder, a ``.gguf`` file, or the alias
    ``smollm2-135m-instruct``) or from an HF-style ``config`` dict with random weights::

        toolkit.build("trunk", "llama", checkpoint="smollm2-135m-instruct")
        toolkit.build("trunk", "llama", config={"vocab_size": 256, "hidden_size": 64,
                      "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128})

    Parts (names as in Hugging Face without the ``model.`` prefix): ``embed_tokens[V,D]``,
    ``layers`` (:class:`toolkit.nn.DecoderBlock`), ``norm``, ``lm_head`` (shares the embedding
    weight when the config ties them), ``rotary``; ``config`` is the
    :class:`~toolkit.contracts.TrunkConfig`, ``arch`` the full :class:`LlamaConfig`.
    """

    api_version = API_VERSION

    @dataclass
    class Params:
        checkpoint: str | None = None
        """A Hugging Face folder, a ``.gguf`` file, or ``smollm2-135m-instruct``."""
        config: dict | None = None
        """An HF-style config dict for a fresh random model (short aliases allowed)."""
        dtype: Literal["fp32", "bf16"] = "fp32"
        seed: int = 0
        """Seed of the random initialisation (``config`` only)."""
        int4_kernels: bool = False
        """Fast approximate CPU inference: run GGUF Q4_0/Q4_1 weights with PyTorch's 4-bit
        kernel (bf16 activations) under no_grad only; the fp32 weights stay the parameters
        (see :class:`toolkit.nn.Int4Linear`)."""
        fast_linears: bool = True
        """Fast exact CPU inference: no-grad fp32 products use packed copies of each weight
        (column panels for decoding, oneDNN for prompts), built on first use (see
        :class:`toolkit.nn.FastLinear`; up to two extra copies of the weights while generating)."""

    def __init__(self, params: "LlamaTrunk.Params | None" = None) -> None:
        super().__init__()
        params = params or self.Params()
        if (params.checkpoint is None) == (params.config is None):
            raise ToolkitError("trunk 'llama' needs exactly one of checkpoint (a path or "
                               "smollm2-135m-instruct) or config (a dict for a random model)")
        self.text_tokenizer: TextTokenizer | None = None
        if params.checkpoint is not None:
            from plugins.llama.checkpoint import load_checkpoint

            loaded = load_checkpoint(params.checkpoint)
            self._build(loaded.arch, meta=True)
            self.load_weights(loaded.tensors, loaded.source)
            if params.int4_kernels:
                self.attach_int4(loaded.int4)
            self.text_tokenizer = loaded.tokenizer
            self.source = loaded.source
        else:
            self._build(parse_config(params.config, "trunk:llama.params.config"), meta=False)
            self.init_weights(params.seed)
            self.source = None
        self.to(DTYPES[params.dtype])
        if params.fast_linears:
            use_fast_linears(self)
        self.config = self._trunk_config()

    # ---------------------------------------------------------------- construction
    def _build(self, arch: LlamaConfig, meta: bool) -> None:
        self.arch = arch
        with torch.device("meta") if meta else torch.device("cpu"):
            self.embed_tokens = nn.Embedding(arch.vocab_size, arch.hidden_size)
            self.layers = nn.ModuleList(DecoderBlock(arch.block()) for _ in range(arch.num_layers))
            self.norm = RMSNorm(arch.hidden_size, arch.rms_eps)
            self.lm_head = nn.Linear(arch.hidden_size, arch.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(arch.head_dim, arch.rope_theta, arch.rope_scaling,
                                      arch.max_position)
        self._tie()

    def _tie(self) -> None:
        if self.arch.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def init_weights(self, seed: int, std: float = 0.02) -> None:
        """Random weights as Hugging Face initialises them: N(0, std) matrices, zero biases,
        unit norms; reproducible from ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight") or "layernorm" in name:
                    p.fill_(1.0)
                elif name.endswith(".bias"):
                    p.zero_()
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) * std)

    def load_weights(self, tensors: dict[str, Tensor], source: str) -> None:
        """Take ``tensors`` (our names, e.g. ``layers.0.self_attn.q_proj.weight``) as the
        weights; a missing, unexpected or wrongly shaped tensor is a one-line error naming
        ``source`` and the tensor."""
        expected = {k: v.shape for k, v in self.state_dict().items()}
        if self.arch.tie_embeddings:
            expected.pop("lm_head.weight", None)
            tensors = {k: v for k, v in tensors.items() if k != "lm_head.weight"}
        for name, shape in expected.items():
            if name not in tensors:
                raise ToolkitError(f"{source}: missing tensor '{name}' (expected shape {list(shape)})")
            if tuple(tensors[name].shape) != tuple(shape):
                raise ToolkitError(f"{source}: tensor '{name}' has shape "
                                   f"{list(tensors[name].shape)}, expected {list(shape)}")
        unexpected = sorted(set(tensors) - set(expected))
        if unexpected:
            raise ToolkitError(f"{source}: unexpected tensor '{unexpected[0]}' for a "
                               f"{self.arch.model_type} model of this config")
        dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
        self.load_state_dict({k: t.to(dtype) for k, t in tensors.items()}, strict=False, assign=True)
        self._tie()

    def attach_int4(self, blocks: dict[str, tuple[Tensor, Tensor, Tensor]]) -> int:
        """Swap each linear named in ``blocks`` (``name.weight -> (codes, scale, zero)``) for a
        :class:`toolkit.nn.Int4Linear` sharing its parameters; returns how many were swapped."""
        swapped = 0
        for name, (codes, scale, zero) in blocks.items():
            parent_name, _, leaf = name.removesuffix(".weight").rpartition(".")
            parent = self.get_submodule(parent_name)
            linear = getattr(parent, leaf)
            if isinstance(linear, nn.Linear) and linear is not self.lm_head:
                new = Int4Linear.from_linear(linear, codes, scale, zero)
                setattr(parent, leaf, new)
                swapped += new is not linear
        return swapped

    def _trunk_config(self) -> TrunkConfig:
        a = self.arch
        reserved = tuple(getattr(self.text_tokenizer, "reserved_ids", ()) or ())
        return TrunkConfig(a.vocab_size, a.hidden_size, a.num_layers, a.num_heads, a.num_kv_heads,
                           a.head_dim, a.max_position, a.model_type, reserved)

    # ---------------------------------------------------------------- forward
    def new_cache(self) -> KVCache:
        """An empty :class:`toolkit.nn.KVCache` with one slot per layer."""
        return KVCache(len(self.layers))

    def make_context(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                     cache: KVCache | None = None) -> AttentionContext:
        """Context for ``input_ids[B,L]`` after ``cache.length`` cached positions.

        ``attention_mask[B,S]`` (1 = real token, ``S = cached + L``; left padding allowed):
        positions are ``cumsum(mask) - 1`` as in Hugging Face. Without it every token is real.
        """
        past = cache.length if cache is not None else 0
        positions, key_padding = positions_and_padding(input_ids, attention_mask, past)
        dtype = self.embed_tokens.weight.dtype
        return AttentionContext(positions, key_padding, self.rotary(positions, dtype))

    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                      cache: KVCache | None = None) -> Tensor:
        """``input_ids[B,L]`` -> final-normed hidden states ``[B,L,D]`` (the head's input).
        Appends this step's keys/values to ``cache`` when given."""
        ctx = self.make_context(input_ids, attention_mask, cache)
        x = self.embed_tokens(input_ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, ctx, cache.layers[i] if cache is not None else None)
        return self.norm(x)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                cache: KVCache | None = None, last_only: bool = False) -> Tensor:
        """``input_ids[B,L]`` -> ``logits[B,L,V]`` (``[B,1,V]`` with ``last_only``).

        ``attention_mask[B,S]``: 1 = real token, ``S = cache.length + L``; ``cache``: a
        :class:`toolkit.nn.KVCache` (from :meth:`new_cache`) that this call extends.
        """
        h = self.hidden_states(input_ids, attention_mask, cache)
        return self.lm_head(h[:, -1:] if last_only else h)

    # ---------------------------------------------------------------- saving
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write a Hugging Face folder: ``config.json``, ``model.safetensors`` (and the
        tokenizer files when there is a tokenizer), each atomically."""
        from plugins.llama.checkpoint import save_folder

        return save_folder(self, Path(directory))

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: Literal["fp32", "bf16"] = "fp32") -> "LlamaTrunk":
        """Load a Hugging Face folder, a ``.gguf`` file or the alias ``smollm2-135m-instruct``."""
        return cls(cls.Params(checkpoint=str(path), dtype=dtype))

    def extra_repr(self) -> str:
        a = self.arch
        return (f"model_type={a.model_type}, layers={a.num_layers}, hidden={a.hidden_size}, "
                f"heads={a.num_heads}/{a.num_kv_heads}, vocab={a.vocab_size}")

