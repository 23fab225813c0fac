"""Token caches: codes equal a direct encode, keyed by tokenizer content, resumable."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from toolkit.contracts import SpeechTokenizer
from toolkit.data.token_cache import TokenCache, build_token_cache, tokenizer_hash
from toolkit.errors import ToolkitError

SR = 16000


class EnergyTokenizer(SpeechTokenizer):
    """Frame log-energy, scaled by a learnable gain and quantised into ``codebook_size`` bins."""

    sample_rate = SR
    frame_rate = 50.0
    codebook_size = 64

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(gain))
        self.hop = int(SR / self.frame_rate)

    def encode(self, wav, lengths=None):
        """``wav[B,T]`` -> ``codes[B,L]`` with ``L = T // hop``."""
        frames = wav[:, : wav.shape[1] // self.hop * self.hop].unfold(1, self.hop, self.hop)
        energy = torch.log10(frames.pow(2).mean(-1) + 1e-8) * self.gain  # [B,L] in about [-8, 0]
        codes = ((energy + 8) / 8 * (self.codebook_size - 1)).round().clamp(0, 63).long()
        lengths = torch.full((wav.shape[0],), wav.shape[1]) if lengths is None else lengths
        return codes, lengths // self.hop

    def training_losses(self, batch):
        return {"loss": self.gain * 0}


def corpus(root: Path, n: int = 7) -> list[dict]:
    rows = []
    for i in range(n):
        t = np.arange(int(SR * (0.3 + 0.1 * i))) / SR
        sf.write(root / f"u{i}.flac", (0.5 * np.sin(2 * np.pi * 3 * t) * np.sin(900 * t)), SR)
        rows.append({"id": f"u{i}", "audio_filepath": f"u{i}.flac", "duration": len(t) / SR})
    (root / "bad.flac").write_bytes(b"not audio at all" * 10)
    rows.append({"id": "bad", "audio_filepath": "bad.flac", "duration": 1.0})
    return rows


def test_cache_matches_direct_encoding_and_is_reused(tmp_path: Path) -> None:
    rows = corpus(tmp_path)
    tok = EnergyTokenizer()
    cache = build_token_cache(tok, rows, tmp_path, tmp_path / "cache", batch_size=3, shard_size=4)
    assert sorted(cache.ids()) == [f"u{i}" for i in range(7)]
    assert [s["id"] for s in cache.skipped] == ["bad"]
    assert len(cache.shards) == 2 and json.loads((cache.folder / "index.json").read_text())
    for i in range(7):
        wav, _ = sf.read(tmp_path / f"u{i}.flac", dtype="float32")
        ref, n = tok.encode(torch.from_numpy(wav)[None])
        got = cache.get(f"u{i}")
        assert got.dtype == torch.long and torch.equal(got, ref[0, : n[0]])
    assert isinstance(np.load(cache.folder / cache.shards[0], mmap_mode="r"), np.memmap)
    again = build_token_cache(tok, rows, tmp_path, tmp_path / "cache")
    assert again.folder == cache.folder and again.items == cache.items
    with pytest.raises(ToolkitError, match="no speech codes"):
        cache.get("nope")


def test_new_tokenizer_weights_never_read_stale_codes(tmp_path: Path) -> None:
    rows = corpus(tmp_path, 3)
    a = build_token_cache(EnergyTokenizer(1.0), rows, tmp_path, tmp_path / "cache")
    assert tokenizer_hash(EnergyTokenizer(1.0)) == a.tokenizer_hash
    b = build_token_cache(EnergyTokenizer(0.5), rows, tmp_path, tmp_path / "cache")
    assert a.folder != b.folder and not torch.equal(a.get("u2"), b.get("u2"))


def test_interrupted_build_resumes_from_finished_shards(tmp_path: Path) -> None:
    rows = corpus(tmp_path)

    class Flaky(EnergyTokenizer):
        calls = 0

        def encode(self, wav, lengths=None):
            Flaky.calls += 1
            if Flaky.calls == 3:
                raise RuntimeError("power cut")
            return super().encode(wav, lengths)

    flaky = Flaky()
    with pytest.raises(RuntimeError):
        build_token_cache(flaky, rows, tmp_path, tmp_path / "cache", batch_size=2, shard_size=2)
    partial = next((tmp_path / "cache").glob("*.partial"))
    assert len(list(partial.glob("shard-*.json"))) == 2 and not list(partial.glob("index.json"))
    Flaky.calls = 10
    cache = build_token_cache(flaky, rows, tmp_path, tmp_path / "cache", batch_size=2,
                              shard_size=2)
    direct = build_token_cache(EnergyTokenizer(), rows, tmp_path, tmp_path / "direct")
    assert Flaky.calls == 10 + 2  # two shards were done: 4 of 8 left, two batches of 2
    assert all(torch.equal(cache.get(i), direct.get(i)) for i in direct.ids())
    assert TokenCache(cache.folder).ids() == cache.ids()
