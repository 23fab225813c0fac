"""Whisper-VQ speech tokenizer plugin (``whisper_vq``) and a CTranslate2 / HF Whisper weight reader."""

from .ct2 import default_model_dir, load_whisper_weights, read_ct2
from .tokenizer import WhisperVQParams, WhisperVQTokenizer

__all__ = ["WhisperVQTokenizer", "WhisperVQParams", "read_ct2", "load_whisper_weights",
           "default_model_dir"]
