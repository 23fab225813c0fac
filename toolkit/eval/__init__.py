"""Evaluation helpers: the ASR judge, text normalisation, WER and answer matching.

    from toolkit.eval import Judge, normalize_text, wer, contains_answer
    texts = Judge().transcribe([wav_16k], 16000)
"""

from toolkit.eval.judge import Judge, judge_model_dir
from toolkit.eval.text import contains_answer, edit_distance, normalize_text, number_to_words, wer

__all__ = ["Judge", "judge_model_dir", "normalize_text", "wer", "contains_answer",
           "edit_distance", "number_to_words"]
