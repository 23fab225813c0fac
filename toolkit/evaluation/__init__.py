"""Evaluation of speech-to-speech models (DESIGN.md section 7).

- :mod:`~toolkit.evaluation.inference`: answer one question in a mode, streaming audio.
- :mod:`~toolkit.evaluation.qa`: spoken QA in the four modes, judged (accuracy per split).
- :mod:`~toolkit.evaluation.retention`: text QA accuracy and perplexity of the text path.
- :mod:`~toolkit.evaluation.speech`: resynthesis WER, latency, the cascade baseline.
- :mod:`~toolkit.evaluation.report`: ``report.json`` / ``report.md`` with plots.
- :mod:`~toolkit.evaluation.run`: :func:`evaluate`, everything for one run.
- :mod:`~toolkit.evaluation.wavstream`: a WAV file that is valid while it grows.
"""

from toolkit.evaluation.inference import MODES, Answer, respond
from toolkit.evaluation.qa import QAItem, accuracy, is_correct
from toolkit.evaluation.run import EvalParams, evaluate
from toolkit.evaluation.wavstream import StreamingWav

__all__ = ["MODES", "Answer", "respond", "QAItem", "accuracy", "is_correct", "EvalParams",
           "evaluate", "StreamingWav"]
