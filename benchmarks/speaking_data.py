"""More text-to-speech data for the speaking probe (``benchmarks/speaking_probe.py --extra N``).

``N`` utterances in one house voice, synthesised with espeak-ng next to the run (never into its
corpus): every name the corpus carries in each of the corpus's *training* carrier sentences,
then plain sentences from the corpus grammar (a seed of their own, so they are new sentences).
Held-out carriers ("Can you say X again?") are never used, so the probe's held-out sentences
stay unseen. Files are named by a hash of what they say, so a second probe reuses them.
"""

from __future__ import annotations

import random
from pathlib import Path

HOUSE_VOICE = ("en-gb+f3", 149, 64)
"""espeak-ng voice, speed (words/min) and pitch of the extra utterances."""


def extra_texts(names: list[str], count: int, seed: int = 1000) -> list[str]:
    """``count`` sentences: each name in each training carrier (shuffled), then grammar sentences."""
    from plugins.spoken_qa.texts import TRAIN_CARRIERS, sentences

    rng = random.Random(seed)
    named = [carrier.format(n) for n in names for carrier in TRAIN_CARRIERS]
    rng.shuffle(named)
    texts = named[:count]
    return texts + sentences(rng, count - len(texts)) if len(texts) < count else texts


def extra_utterances(root: Path, names: list[str], count: int,
                     voice: tuple[str, int, int] = HOUSE_VOICE) -> list[dict]:
    """Synthesise (or reuse) ``count`` extra utterances under ``root/audio`` -> corpus-style rows
    (``id``, ``text``, ``audio_filepath`` relative to ``root``, ``duration``, ``split: train``)."""
    from toolkit.data.synth import SynthJob, Voice, synthesize_all

    speaker = Voice(*voice)
    texts = extra_texts(names, count)
    jobs = [SynthJob(f"x{i:06d}", text, speaker) for i, text in enumerate(texts)]
    done = synthesize_all(jobs, root / "audio", description="synthesising extra text-to-speech data")
    return [{"id": job.stem, "text": job.text, "split": "train", "duration": seconds,
             "audio_filepath": str(path.relative_to(root))} for job, (path, seconds) in zip(jobs, done)]
