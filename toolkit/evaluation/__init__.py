"""Evaluation of speech-to-speech models: the judge, the metrics, the measures and the report.

- :mod:`~toolkit.evaluation.judge`: the ASR judge (Whisper on CTranslate2) that hears speech.
- :mod:`~toolkit.evaluation.metrics`: text normalisation, WER, answer matching.
- :mod:`~toolkit.evaluation.qa`: spoken QA in the four modes, judged (accuracy per split).
- :mod:`~toolkit.evaluation.ladder`: hearing and speaking of each LM stage.
- :mod:`~toolkit.evaluation.retention`: text QA accuracy and perplexity of the text path.
- :mod:`~toolkit.evaluation.speech`: resynthesis WER, latency, the cascade baseline.
- :mod:`~toolkit.evaluation.report`: ``report.json`` / ``report.md`` with plots.
- :mod:`~toolkit.evaluation.run`: :func:`~toolkit.evaluation.run.evaluate`, everything for one run.

Answering one question (inference) belongs to the model: :mod:`toolkit.speech_lm.inference`.

    from toolkit.evaluation import Judge, normalize_text, wer, contains_answer
    texts = Judge().transcribe([wav_16k], 16000)
"""

from toolkit.evaluation.judge import Judge, judge_model_dir
from toolkit.evaluation.metrics import contains_answer, edit_distance, normalize_text, number_to_words, wer

__all__ = ["Judge", "judge_model_dir", "normalize_text", "wer", "contains_answer",
           "edit_distance", "number_to_words"]
