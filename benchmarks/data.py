"""Data pipeline throughput on this machine: espeak-ng synthesis, audio loading, token caches.

    python benchmarks/data.py [--preset tiny|full] [--workers N] [--out DIR]

Prints a table: synthesis speed (seconds of audio per second of wall time) while building a
fresh corpus, the audio loader (audio seconds and batches per second through
AudioDataModule), token-cache building and reading (tokens per second). The cache uses a
frame-energy quantiser at 12.5 tokens/s (the rate of the default tokenizer) so the numbers
measure the pipeline, not a model.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

import toolkit
from toolkit.contracts import SpeechTokenizer
from toolkit.data.datamodule import AudioDataModule
from toolkit.data.token_cache import build_token_cache
from toolkit.io import read_jsonl

PRESETS = {
    "tiny": {"num_facts": 120, "num_sentences": 100, "num_dialogues": 80, "turn_voices": 2},
    "full": {"num_facts": 400, "num_sentences": 800, "num_dialogues": 600, "turn_voices": 4,
             "num_speakers": 40},
}


class FrameEnergyTokenizer(SpeechTokenizer):
    """Log energy of 80 ms frames quantised to 1024 levels (a stand-in with no weights)."""

    sample_rate, frame_rate, codebook_size = 16000, 12.5, 1024

    def encode(self, wav, lengths=None):
        hop = 1280
        frames = wav[:, : wav.shape[1] // hop * hop].unfold(1, hop, hop)
        level = (torch.log10(frames.pow(2).mean(-1) + 1e-8) + 8) / 8
        lengths = torch.full((wav.shape[0],), wav.shape[1]) if lengths is None else lengths
        return (level * 1023).round().clamp(0, 1023).long(), lengths // hop

    def training_losses(self, batch):
        raise NotImplementedError


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the corpus here")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-data-"))
    shutil.rmtree(root / "audio", ignore_errors=True)
    (root / "corpus.json").unlink(missing_ok=True)
    ds = toolkit.build("dataset", "spoken_qa", workers=args.workers, **PRESETS[args.preset])
    paths, build_s = timed(lambda: ds.prepare(root))
    utts = read_jsonl(paths["utterances"])
    audio_s = sum(u["duration"] for u in utts)
    _, reuse_s = timed(lambda: (root / "corpus.json").unlink() or ds.prepare(root))

    dm = AudioDataModule(paths["utterances"], root, 16000, batch_seconds=60.0, val_split=None,
                         tasks=None, check="header")
    dm.setup()
    loader = dm.train_dataloader()
    seen, load_s = timed(lambda: [float(b["lengths"].sum()) / 16000 for b in loader])
    dm_full = AudioDataModule(paths["utterances"], root, 16000, val_split=None)
    _, scan_s = timed(dm_full.setup)

    train = [u for u in utts if u["split"] == "train"]
    cache, cache_s = timed(lambda: build_token_cache(FrameEnergyTokenizer(), train, root,
                                                     root / "token_cache", batch_size=32))
    tokens, read_s = timed(lambda: sum(cache.get(i).numel() for i in cache.ids()))

    rows = [
        ("corpus build (synthesis)", f"{len(utts)} utts, {audio_s / 60:.1f} min audio",
         f"{build_s:.1f} s", f"{audio_s / build_s:.0f} audio s/s"),
        ("corpus re-run (all reused)", "", f"{reuse_s:.2f} s", ""),
        ("scan, full decode", f"{len(dm_full.datasets['train'])} train utts", f"{scan_s:.2f} s",
         f"{sum(dm_full.datasets['train'].lengths) / 16000 / scan_s:.0f} audio s/s"),
        ("AudioDataModule epoch", f"{len(seen)} batches", f"{load_s:.2f} s",
         f"{sum(seen) / load_s:.0f} audio s/s, {len(seen) / load_s:.0f} batch/s"),
        ("token cache build (12.5 Hz)", f"{len(cache)} utts", f"{cache_s:.2f} s",
         f"{tokens / cache_s:.0f} tokens/s"),
        ("token cache read (mmap)", f"{tokens} tokens", f"{read_s:.3f} s",
         f"{tokens / read_s:.0f} tokens/s"),
    ]
    print(f"\npreset {args.preset}, {torch.get_num_threads()} torch threads, corpus in {root}")
    print(f"| {'what':28} | {'size':30} | {'wall':>8} | {'throughput':34} |")
    print(f"|{'-' * 30}|{'-' * 32}|{'-' * 10}|{'-' * 36}|")
    for what, size, wall, rate in rows:
        print(f"| {what:28} | {size:30} | {wall:>8} | {rate:34} |")
    if args.out is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
