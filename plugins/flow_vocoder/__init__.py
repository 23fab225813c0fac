"""Flow-matching decoder with an ISTFT vocoder (``flow_vocoder``)."""

from .decoder import FlowVocoder, FlowVocoderParams

__all__ = ["FlowVocoder", "FlowVocoderParams"]
