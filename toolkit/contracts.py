"""The contracts between the toolkit and its plugins.

Each plugin kind has an abstract base here (:data:`BASES`, kind -> base); every base is an
``abc.ABC``, so a class that leaves an abstract method out cannot be instantiated, and the
registry refuses a plugin class that does not subclass its kind's base. A plugin subclasses it,
declares a ``Params`` dataclass and ``api_version = toolkit.API_VERSION``, and is constructed as
``cls(params)``.
Shapes: ``B`` batch, ``T`` samples, ``F`` frames, ``L`` tokens, ``D`` model width.
Components are plain ``nn.Module``s: training logic lives in toolkit's Lightning modules,
which call :meth:`Trainable.training_losses`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.speech_lm.layout import SpecialTokens, SplitCaches, SplitOutput


class Trainable(ABC):
    """A component that a generic toolkit stage (``tokenizer``, ``decoder``) can train."""

    @abstractmethod
    def training_losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Losses for one batch; must contain ``"loss"`` (the scalar optimised).

        ``batch`` holds ``wav[B,T]`` float at :attr:`sample_rate`, ``lengths[B]`` (samples),
        ``text: list[str]`` and ``speaker: list[str]``. Other scalar entries are logged.
        """


class SpeechTokenizer(nn.Module, Trainable):
    """Waveform -> discrete speech codes.

    Optional hooks the stages use when present: ``init_codebook(batches) -> int`` (the
    ``tokenizer`` stage, before training), ``code_vectors() -> Tensor[codebook_size, D]``
    (what each code stands for; the ``decoder`` stage hands it to the decoder) and
    ``word_spans(codes, text) -> [(word, start, end)] | None`` (where each whitespace word of a
    transcript is said in its codes; the ``tts_words`` task of the LM stages needs it)."""

    sample_rate: int
    """Input sample rate in Hz."""
    frame_rate: float
    """Codes per second."""
    codebook_size: int
    """Number of distinct codes (``0 .. codebook_size - 1``)."""

    @abstractmethod
    def encode(self, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``wav[B,T]`` float at ``sample_rate``, ``lengths[B]`` -> ``codes[B,L]`` long,
        ``code_lengths[B]`` (entries past a length are undefined)."""

    def stream_encoder(self) -> "StreamingEncoder":
        """A stateful encoder whose concatenated chunk outputs equal :meth:`encode`."""
        raise NotImplementedError(f"{type(self).__name__} has no streaming encoder")


class StreamingEncoder(ABC):
    """Chunked encoding of one stream: ``push(wav[T_chunk]) -> codes[L_chunk]``."""

    @abstractmethod
    def push(self, wav: Tensor) -> Tensor: ...

    @abstractmethod
    def flush(self) -> Tensor: ...


VOICE_PROMPT_SECONDS = 3.0
"""The longest reference clip a voice prompt is made from (seconds; longer clips are cut to
their first 3 s by :func:`voice_prompt_clip`), so a prompt costs the same however long the clip:
``resynth`` used its whole input as the prompt, and ``flow_vocoder``'s streaming decoded that
prefix again with every window, which made ``resynth`` quadratic in the input's length (600 s
took more than 600 s). Chosen by measuring (``benchmarks/decode_cost.py`` on moss_tiny's
decoder): the prompt's speaker embedding is at cosine 0.999 to that of a whole 30 s clip from
3 s on (0.993 at 0.5 s, 0.997 at 1 s), while with the prefix decoded per window each second of
prompt added about 11 % to the decode (10 s: 2.1x). Streaming now decodes the prefix once, so
the length matters less there, but offline decoding, the speaker encoder and ``resynth``'s
encoding of its voice still grow with it."""


def voice_prompt_clip(wav: Tensor, sample_rate: int, seconds: float = VOICE_PROMPT_SECONDS) -> Tensor:
    """The first ``seconds`` (default :data:`VOICE_PROMPT_SECONDS`) of a reference clip
    ``wav[T]`` at ``sample_rate`` -> ``wav[min(T, seconds * sample_rate)]``. Every voice prompt
    goes through this (decoders' ``make_prompt``, ``resynth`` before encoding its voice), so
    synthesis costs the same per second of output however long the reference is."""
    return wav[..., : max(1, int(round(seconds * sample_rate)))]


@dataclass
class VoicePrompt:
    """A reference voice: ``mel[F,n_mels]`` of the clip, ``codes[L]``, ``speaker[E]`` embedding."""

    mel: Tensor | None = None
    codes: Tensor | None = None
    speaker: Tensor | None = None


class Decoder(nn.Module, Trainable):
    """Speech codes -> waveform, in the voice of an optional prompt.

    Optional hook: ``init_code_vectors(vectors[codebook_size, D])``, called by the ``decoder``
    stage before training with the tokenizer's :meth:`code_vectors` when both exist."""

    sample_rate: int
    frame_rate: float
    """Codes per second the decoder expects (must equal the tokenizer's)."""

    @abstractmethod
    def decode(self, codes: Tensor, prompt: VoicePrompt | None = None,
               lengths: Tensor | None = None) -> Tensor:
        """``codes[B,L]`` long -> ``wav[B,T]`` float at ``sample_rate``."""

    def make_prompt(self, wav: Tensor, codes: Tensor | None = None) -> VoicePrompt:
        """Build a :class:`VoicePrompt` from a reference clip ``wav[T]`` (an implementation
        reads at most its first :data:`VOICE_PROMPT_SECONDS`, see :func:`voice_prompt_clip`)."""
        raise NotImplementedError(f"{type(self).__name__} takes no voice prompt")

    def stream_decoder(self, prompt: VoicePrompt | None = None) -> "StreamingDecoder":
        raise NotImplementedError(f"{type(self).__name__} has no streaming decoder")


class StreamingDecoder(ABC):
    """Chunked synthesis of one stream: ``push(codes[L_chunk]) -> wav[T_chunk]``."""

    @abstractmethod
    def push(self, codes: Tensor) -> Tensor: ...

    @abstractmethod
    def flush(self) -> Tensor: ...


class Trunk(nn.Module, ABC):
    """A decoder-only text LM whose parts the splitter can take apart.

    Attributes the splitter relies on:
      ``embed_tokens``: ``nn.Embedding[V,D]``; ``layers``: ``nn.ModuleList`` of blocks, each
      called as ``block(x[B,L,D], ctx) -> x[B,L,D]`` with a :class:`toolkit.nn.AttentionContext`;
      ``norm``: final norm; ``lm_head``: ``nn.Linear[D,V]`` (may share the embedding weight);
      ``config``: a :class:`TrunkConfig`; ``text_tokenizer``: a :class:`TextTokenizer` or None.

    Optional hook: ``save_pretrained(folder) -> Path`` (the ``pretrain`` stage and export
    write the trunk with it; export refuses a trunk without it).
    """

    config: "TrunkConfig"
    embed_tokens: nn.Embedding
    layers: nn.ModuleList
    norm: nn.Module
    lm_head: nn.Linear
    text_tokenizer: "TextTokenizer | None"

    @abstractmethod
    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                cache: Any = None) -> Tensor:
        """``input_ids[B,L]``, ``attention_mask[B,S]`` (1 = real token, S = cached + L)
        -> ``logits[B,L,V]``."""

    @abstractmethod
    def make_context(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                     cache: Any = None) -> Any:
        """The :class:`toolkit.nn.AttentionContext` (positions, masks, cache) for a forward."""

    @abstractmethod
    def new_cache(self) -> Any:
        """An empty :class:`toolkit.nn.KVCache` (one slot a layer) for incremental ``forward``."""


class SplitModel(nn.Module, ABC):
    """The splitter kind: a :class:`Trunk` taken apart into shared lower blocks and parallel
    ``text`` and ``speech`` branches, built as ``cls(params)`` with ``params.trunk`` the trunk
    (a runtime field, ``toolkit.params.runtime()``) and ``params.codebook_size``, the speech
    tokenizer's.

    ``input_ids[B,L,2]`` holds a text and a speech channel; where the text id is
    ``tokens.modality_pad`` the position is speech (the layout: :mod:`toolkit.speech_lm.layout`).
    Attributes the toolkit relies on:
      ``tokens``: :class:`toolkit.speech_lm.layout.SpecialTokens`; ``config``: the trunk's
      :class:`TrunkConfig`; ``text_tokenizer``: the trunk's :class:`TextTokenizer` or None;
      ``split_at``: index of the first branch block; ``embed_tokens``: text ``nn.Embedding``;
      ``speech_embed``: speech ``nn.Embedding``; ``branches``: ``nn.ModuleDict`` with ``text``
      and ``speech``, each with a ``head`` (``nn.Linear[D, vocab]``).
    Optional hooks: ``init_code_vectors(vectors[codebook_size, D])``, called by stage I / II
    on a fresh model with the tokenizer's :meth:`SpeechTokenizer.code_vectors`,
    ``tie_speech_head(vectors)``, called with them by every LM stage before it trains, and
    ``merge_code_map()``, called when an LM stage's training ends, before it saves.
    """

    tokens: "SpecialTokens"
    config: "TrunkConfig"
    text_tokenizer: "TextTokenizer | None"
    split_at: int
    embed_tokens: nn.Embedding
    speech_embed: nn.Embedding
    branches: nn.ModuleDict

    @abstractmethod
    def forward(self, input_ids: Tensor, branches: tuple[str, ...] = ("text", "speech"),
                attention_mask: Tensor | None = None,
                caches: "SplitCaches | None" = None) -> "SplitOutput":
        """``input_ids[B,L,2]`` -> ``SplitOutput`` with ``{branch}_logits[B,L,V_branch]`` of
        the requested ``branches`` (None for the others). ``attention_mask[B,S]`` covers cached
        + new positions; with ``caches`` (from :meth:`new_caches`) the call is incremental."""

    @abstractmethod
    def forward_hidden(self, input_ids: Tensor, branches: tuple[str, ...] = ("text", "speech"),
                       attention_mask: Tensor | None = None,
                       caches: "SplitCaches | None" = None) -> dict[str, Tensor]:
        """Like :meth:`forward` but ``branch -> final-normed states[B,L,D]`` (apply :meth:`head`)."""

    @abstractmethod
    def head(self, branch: str, hidden: Tensor) -> Tensor:
        """Logits of ``branch``'s head for normed states ``hidden[..., D]``."""

    def speech_input(self, input_ids: Tensor) -> Tensor:
        """``input_ids[B,L,2]`` (right-padded, uncached) -> ``[B,L,D]``, what the first shared
        block receives (the hearing CTC loss reads its speech positions). Optional: only
        ``hearing_ctc`` needs it."""
        raise ToolkitError(f"splitter {type(self).__name__} does not expose speech_input, which "
                           "hearing_ctc needs; set hearing_ctc: 0")

    @abstractmethod
    def new_caches(self) -> "SplitCaches":
        """Empty :class:`toolkit.speech_lm.layout.SplitCaches` for incremental decoding."""

    @abstractmethod
    def parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Named parameters by side, ``{"text": [...], "speech": [...]}`` (tied weights once):
        stage I trains ``speech`` with ``text`` frozen, and saves ``speech``."""


@dataclass
class TrunkConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position: int
    model_type: str = "llama"
    reserved_token_ids: tuple[int, ...] = ()
    """Ids of unused special tokens a splitter may claim (for ``sosp`` / ``modality_pad``)."""


class TextTokenizer(ABC):
    """Text <-> ids, with the trunk's chat template."""

    eos_ids: tuple[int, ...]
    pad_id: int

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: list[int]) -> str: ...

    @abstractmethod
    def chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        """Ids of ``messages`` (``{"role", "content"}``) in the trunk's chat template."""


class SpeechDataset(ABC):
    """A corpus: prepares manifests (JSONL, one utterance a line) in a folder."""

    @abstractmethod
    def prepare(self, root: Path) -> dict[str, Path]:
        """Write (or reuse) the corpus under ``root``; return manifest name -> JSONL path."""

    def examples(self, root: Path, manifest: str) -> Iterator[dict[str, Any]]:
        """The entries of one prepared manifest (``audio_filepath``, ``text``, ``split``, ...)."""
        import json

        with open(self.prepare(root)[manifest], encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


BASES: dict[str, type] = {"tokenizer": SpeechTokenizer, "trunk": Trunk, "splitter": SplitModel,
                          "decoder": Decoder, "dataset": SpeechDataset}
"""Plugin kind (``toolkit.registry.KINDS``) -> the base its plugin classes must subclass."""


__all__ = ["Trainable", "SpeechTokenizer", "StreamingEncoder", "VoicePrompt", "Decoder",
           "StreamingDecoder", "Trunk", "SplitModel", "TrunkConfig", "TextTokenizer",
           "SpeechDataset", "BASES"]
