"""Fixtures every test folder shares: espeak-ng speech at 16 kHz (``speak``, ``sentence``).

Torch runs single-threaded with denormals flushed for the whole session: tiny ops on a shared
2-core machine stall in OpenMP (100x here), and a conftest applies process-wide anyway."""

import io
import shutil
import subprocess

import pytest
import soundfile as sf
import torch

from toolkit.audio_features import resample

torch.set_flush_denormal(True)
# tiny ops on a shared 2-core machine: one thread avoids OpenMP stalls (100x here)
torch.set_num_threads(1)


def espeak(text: str, voice: str = "en-us") -> torch.Tensor:
    """``wav[T]`` float at 16 kHz of ``text`` spoken by espeak-ng."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True,
                         check=True).stdout
    wav, rate = sf.read(io.BytesIO(out), dtype="float32")
    return resample(torch.from_numpy(wav), rate, 16000)


@pytest.fixture(scope="session")
def speak():
    """``speak(text, voice="en-us") -> wav[T]`` at 16 kHz, by espeak-ng."""
    return espeak


@pytest.fixture(scope="session")
def sentence() -> tuple[str, torch.Tensor]:
    text = "The quick brown fox jumps over the lazy dog."
    return text, espeak(text)
