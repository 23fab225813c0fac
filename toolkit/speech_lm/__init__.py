"""The modality-split speech LM: layout, sequences, loss, generation, inference, training module.

- :mod:`~toolkit.speech_lm.layout`: special tokens, the two-channel grid, the split model's
  output and cache types.
- :mod:`~toolkit.speech_lm.sequences`: conversations / pre-training pieces -> examples.
- :mod:`~toolkit.speech_lm.loss`: per-modality next-token loss, computing only what is needed.
- :mod:`~toolkit.speech_lm.generate`: the per-sequence modality state machine.
- :mod:`~toolkit.speech_lm.module`: the Lightning module of the LM stages.
- :mod:`~toolkit.speech_lm.data`: corpus + speech codes -> batches.
- :mod:`~toolkit.speech_lm.bundle`: :class:`SpeechLM`, the model with its tokenizer and decoder.
- :mod:`~toolkit.speech_lm.inference`: answer one question in a mode, streaming audio.
"""

from toolkit.speech_lm.generate import GenerationConfig, Generated, generate
from toolkit.speech_lm.layout import (IGNORE, SPEECH, TEXT, SpecialTokens, SplitCaches, SplitOutput,
                                      speech_positions, text_positions)
from toolkit.speech_lm.loss import losses_from_logits, split_lm_losses
from toolkit.speech_lm.sequences import Turn, build_conversation, pretraining_example

__all__ = ["GenerationConfig", "Generated", "generate", "IGNORE", "SPEECH", "TEXT", "SpecialTokens",
           "SplitCaches", "SplitOutput", "speech_positions", "text_positions", "losses_from_logits",
           "split_lm_losses", "Turn", "build_conversation", "pretraining_example"]
