"""Decode cost of a run's decoder: streaming against offline, the voice prompt, and ``resynth``
against the input's length.

    python benchmarks/decode_cost.py RUN_DIR [--decode-seconds 120] [--lengths 30 60 120 600]
                                     [--prompt-seconds 0.5 1 2 3 5 10] [--threads 1]

Three tables, all on the run's trained tokenizer and decoder (``RUN/tokenizer``, ``RUN/decoder``):

1. *streaming vs offline*: the codes of ``--decode-seconds`` of noise decoded whole
   (``decoder.decode``), and streamed (``stream_decoder``) in pieces of 50 codes (as ``resynth``
   pushes them) and of ``chunk_tokens`` codes (as ``chat`` pushes them while it generates);
   seconds and the ratio to offline, no voice prompt.
2. *voice prompt*: the same codes streamed in pieces of 50 with a voice prompt of each
   ``--prompt-seconds`` (made without the cap, from a clip of the run's corpus speech), the
   ratio to no prompt, and the cosine of the prompt's speaker embedding to that of the whole
   30 s clip: what :data:`toolkit.contracts.VOICE_PROMPT_SECONDS` was chosen from.
3. *resynth*: ``python -m toolkit resynth RUN --audio noise.wav --out out.wav`` (the command as a
   user runs it, in a subprocess: start-up and model loading included, after one untimed
   warm-up run) on noise of each ``--lengths``; seconds, seconds per second of audio, and the
   cost per added second from each length to the next (flat when time is linear in length).

Decode timings are medians of 3 runs, resynth timings single runs, with ``--threads`` intra-op threads (1 by default: small windows do not
gain from more on a shared 2-core machine, and a loaded machine makes more threads slower).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


REPEATS = 3
"""Decode timings are the median of this many runs (a shared machine is noisy)."""


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    """(median seconds of ``repeats`` calls of ``fn``, its last result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def noise(seconds: float, rate: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(int(seconds * rate), generator=torch.Generator().manual_seed(seed))


def streamed(decoder, codes: torch.Tensor, piece: int, prompt=None) -> torch.Tensor:
    """``codes[L]`` pushed ``piece`` at a time -> ``wav[T]``."""
    stream = decoder.stream_decoder(prompt)
    return torch.cat([stream.push(codes[i: i + piece]) for i in range(0, len(codes), piece)]
                     + [stream.flush()])


def streaming_table(tokenizer, decoder, seconds: float) -> list[tuple[str, float, float]]:
    """(row, seconds, ratio to offline) for decoding the codes of ``seconds`` of noise."""
    with torch.no_grad():
        codes = tokenizer.encode(noise(seconds, tokenizer.sample_rate)[None])[0][0]
        decoder.decode(codes[None, :50])  # warm up
        offline, _ = timed(lambda: decoder.decode(codes[None]), REPEATS)
        rows = [(f"offline decode ({len(codes)} codes)", offline, 1.0)]
        for piece, who in ((50, "resynth"), (decoder.params.chunk_tokens, "chat")):
            t, _ = timed(lambda: streamed(decoder, codes, piece), REPEATS)
            rows.append((f"streaming, pieces of {piece} codes ({who})", t, t / offline))
    return rows


def speech_clip(run: Path, seconds: float, rate: int) -> torch.Tensor:
    """About ``seconds`` of one speaker's corpus utterances, end to end."""
    from toolkit.data.audio import load_audio
    from toolkit.data.manifest import corpus_manifest
    from toolkit.io import read_jsonl

    rows = read_jsonl(corpus_manifest(run / "corpus"))
    speaker = max({r.get("speaker") for r in rows}, key=lambda s: sum(r.get("speaker") == s for r in rows))
    pieces, total = [], 0
    for row in (r for r in rows if r.get("speaker") == speaker):
        pieces.append(load_audio(run / "corpus" / row["audio_filepath"], rate))
        total += len(pieces[-1])
        if total >= seconds * rate:
            break
    return torch.cat(pieces)[: int(seconds * rate)]


def prompt_table(run: Path, tokenizer, decoder, lengths: list[float],
                 seconds: float) -> list[tuple[str, float, float, float]]:
    """(row, seconds, ratio to no prompt, speaker cosine to the whole 30 s clip) per prompt
    length, streaming the codes of ``seconds`` of noise."""
    clip = speech_clip(run, 30.0, tokenizer.sample_rate)
    with torch.no_grad():
        codes = tokenizer.encode(noise(seconds, tokenizer.sample_rate)[None])[0][0]
        clip_codes = tokenizer.encode(clip[None])[0][0]
        whole = decoder.make_prompt(clip, clip_codes, max_seconds=1e9).speaker
        base, _ = timed(lambda: streamed(decoder, codes, 50), REPEATS)
        rows = [("no prompt", base, 1.0, float("nan"))]
        for p in lengths:
            n = int(p * tokenizer.sample_rate)
            prompt = decoder.make_prompt(clip[:n], clip_codes, max_seconds=p)
            t, _ = timed(lambda: streamed(decoder, codes, 50, prompt), REPEATS)
            cos = float(torch.nn.functional.cosine_similarity(prompt.speaker, whole, dim=0))
            rows.append((f"prompt {p:g} s", t, t / base, cos))
    return rows


def resynth_table(run: Path, lengths: list[float], threads: int) -> list[tuple[float, float]]:
    """(audio seconds, wall seconds of ``python -m toolkit resynth``) per length."""
    import soundfile as sf

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in [1.0, *lengths]:  # the first, untimed, warms file caches
            wav = Path(tmp) / f"noise{seconds:g}.wav"
            sf.write(str(wav), noise(seconds, 16000, seed=int(seconds)).numpy(), 16000)
            cmd = [sys.executable, "-m", "toolkit", "resynth", str(run), "--audio", str(wav),
                   "--out", str(Path(tmp) / "out.wav")]
            t, done = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, env=env))
            if done.returncode != 0:
                raise SystemExit(f"resynth failed on {seconds:g} s: {done.stderr.strip()[-500:]}")
            rows.append((seconds, t))
    return rows[1:]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--decode-seconds", type=float, default=120.0)
    parser.add_argument("--lengths", type=float, nargs="*", default=[30, 60, 120, 600])
    parser.add_argument("--prompt-seconds", type=float, nargs="*", default=[0.5, 1, 2, 3, 5, 10])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    from toolkit.contracts import VOICE_PROMPT_SECONDS
    from toolkit.persist.components import load_trained

    run = Path(args.run_dir)
    tokenizer, decoder = load_trained(run, "tokenizer"), load_trained(run, "decoder")
    rows = streaming_table(tokenizer, decoder, args.decode_seconds)
    print_table(f"streaming vs offline decode, {args.decode_seconds:g} s of codes, {args.threads} thread(s)",
                ["", "seconds", "x offline"], [[r, f"{t:.2f}", f"{x:.2f}"] for r, t, x in rows])
    if args.prompt_seconds:
        rows = prompt_table(run, tokenizer, decoder, args.prompt_seconds, args.decode_seconds)
        print_table(f"voice prompt: {args.decode_seconds:g} s of codes streamed in pieces of 50 "
                    f"(cap: toolkit.contracts.VOICE_PROMPT_SECONDS = {VOICE_PROMPT_SECONDS:g} s)",
                    ["", "seconds", "x no prompt", "speaker cosine to 30 s"],
                    [[r, f"{t:.2f}", f"{x:.2f}", "-" if c != c else f"{c:.3f}"] for r, t, x, c in rows])
    if args.lengths:
        rows = resynth_table(run, args.lengths, args.threads)
        table, prev = [], None
        for seconds, t in rows:
            step = "-" if prev is None else f"{(t - prev[1]) / (seconds - prev[0]):.3f}"
            table.append([f"{seconds:g}", f"{t:.1f}", f"{t / seconds:.3f}", step])
            prev = (seconds, t)
        print_table("python -m toolkit resynth RUN --audio noise.wav --out out.wav",
                    ["audio s", "seconds", "s per audio s", "s per added audio s"], table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
