"""Text-to-speech with espeak-ng, in parallel, into 16 kHz mono audio files.

``espeak-ng -v VOICE -s SPEED -p PITCH --stdout TEXT`` writes a 22050 Hz WAV to stdout; it is
deterministic given voice, speed and pitch, and so is our resampling and 16-bit encoding, so
a corpus rebuilds byte for byte. Each file is written atomically and named after a hash of
what it says and how, so a re-run reuses every finished file and never a stale one.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from toolkit.audio_features import resample
from toolkit.data.audio import audio_info, save_audio, torch_threads
from toolkit.errors import ToolkitError

ESPEAK_MISSING = "espeak-ng not found; install it with apt-get install espeak-ng"


@dataclass(frozen=True)
class Voice:
    """An espeak-ng speaker: ``voice`` (``en-us+f3``), ``speed`` (words/min), ``pitch`` (0-99)."""

    voice: str
    speed: int
    pitch: int

    @property
    def name(self) -> str:
        return f"{self.voice}/s{self.speed}/p{self.pitch}"


@dataclass(frozen=True)
class SynthJob:
    """One utterance to synthesise into ``folder/<stem>-<hash>.<ext>``."""

    stem: str
    text: str
    voice: Voice


def espeak_binary() -> str:
    """Path of the espeak-ng executable, or a one-line :class:`ToolkitError`."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ToolkitError(ESPEAK_MISSING)
    return exe


def run_espeak(args: list[str], failure: str) -> bytes:
    """stdout of ``espeak-ng ARGS``; a failure is one :class:`ToolkitError` line: ``failure``
    and espeak-ng's first error line."""
    try:
        return subprocess.run([espeak_binary(), *args], capture_output=True, check=True,
                              timeout=60).stdout
    except subprocess.CalledProcessError as err:
        msg = err.stderr.decode(errors="replace").strip().splitlines()
        raise ToolkitError(f"{failure}: {msg[0] if msg else 'exit ' + str(err.returncode)}") from None


def synthesize(text: str, voice: Voice, sample_rate: int = 16000) -> torch.Tensor:
    """Speak ``text`` -> ``wav[T]`` float32 at ``sample_rate``."""
    out = run_espeak(["-v", voice.voice, "-s", str(voice.speed), "-p", str(voice.pitch),
                      "--stdout", "--", text], f"espeak-ng failed for voice {voice.voice!r}")
    data, rate = sf.read(io.BytesIO(out), dtype="float32", always_2d=True)
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    return resample(wav, rate, sample_rate, cached_kernel=True)


@functools.lru_cache(maxsize=65536)
def phonemize(text: str, voice: str = "en-us") -> str:
    """``text`` -> espeak-ng's phonemes in its ASCII alphabet (``espeak-ng -q -x``), clauses
    joined by spaces, words separated by spaces: "capital" -> ``k'apIt#@L``. Cached per text."""
    out = run_espeak(["-q", "-x", "-v", voice, "--", text],
                     f"espeak-ng could not phonemize with voice {voice!r}")
    return " ".join(out.decode(errors="replace").split())


def job_path(folder: Path, job: SynthJob, sample_rate: int, fmt: str) -> Path:
    key = f"{job.text}\x00{job.voice.name}\x00{sample_rate}\x00{fmt}".encode()
    digest = hashlib.sha1(key).hexdigest()[:10]
    return folder / f"{job.stem}-{digest}.{fmt}"


def _run_job(job: SynthJob, path: Path, sample_rate: int) -> float:
    if path.is_file():
        frames, rate, _ = audio_info(path)
        return frames / rate
    wav = synthesize(job.text, job.voice, sample_rate)
    save_audio(path, wav, sample_rate)
    return wav.numel() / sample_rate


def synthesize_all(jobs: Sequence[SynthJob], folder: Path, sample_rate: int = 16000,
                   fmt: str = "flac", workers: int = 0,
                   description: str = "synthesising speech") -> list[tuple[Path, float]]:
    """Synthesise every job (reusing finished files) -> ``[(path, seconds)]`` in job order.

    ``workers=0`` uses one thread per CPU core (espeak-ng runs as a subprocess, so threads
    overlap well).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    espeak_binary()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [job_path(folder, job, sample_rate, fmt) for job in jobs]
    workers = workers or max(1, os.cpu_count() or 1)
    results: list[tuple[Path, float]] = []
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with (Progress(*columns, transient=True) as progress, ThreadPoolExecutor(workers) as pool,
          torch_threads(1)):
        task = progress.add_task(description, total=len(jobs))
        for path, seconds in zip(paths, pool.map(_run_job, jobs, paths,
                                                 [sample_rate] * len(jobs))):
            results.append((path, seconds))
            progress.advance(task)
    return results


__all__ = ["Voice", "SynthJob", "ESPEAK_MISSING", "espeak_binary", "synthesize", "phonemize",
           "synthesize_all", "job_path"]
