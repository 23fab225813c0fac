"""Shared fixtures for the codec tests: espeak-ng clips at 16 kHz, small plugin instances."""

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
def sentence() -> tuple[str, torch.Tensor]:
    text = "The quick brown fox jumps over the lazy dog."
    return text, espeak(text)
