"""Codec benchmark: ``python benchmarks/codec.py RUN_DIR [--n 40] [--split test] [--threads 1]
[--decoder-set KEY=VALUE ...]``.

For a run's trained tokenizer + decoder, on held-out utterances of the run's corpus: the ASR
judge's WER on resynthesised speech (audio -> codes -> decoder -> judge) next to its WER on
the original audio (and, where the corpus names an entity per utterance, the share of
utterances whose entity the judge hears in each), codebook perplexity and usage, the WER of
the codes spelled by the tokenizer's own local CTC head where it has one (what the codes carry with no decoder and no
language model; in letters, or in espeak-ng phoneme words for a phoneme head), encode and decode real-time factors
(seconds of compute per second of audio; < 0.2 means faster than 5x real time) and the
first-chunk latency of streaming decoding. Prints a table and writes ``codec_benchmark.json``
into the run folder (``codec_benchmark-KEY=VALUE....json`` with ``--decoder-set``, which changes
inference parameters of the trained decoder, e.g. ``steps=0 temperature=0`` for flow_vocoder's
prior mel alone).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch


def held_out(run: Path, split: str, n: int, sample_rate: int) -> list[tuple[str, torch.Tensor, str | None]]:
    """``(text, wav[T] at sample_rate, entity or None)`` of the first ``n`` utterances of ``split``."""
    from toolkit.data.audio import load_audio
    from toolkit.data.manifest import corpus_manifest
    from toolkit.io import read_jsonl

    corpus = run / "corpus"
    rows = [r for r in read_jsonl(corpus_manifest(corpus)) if r.get("split") == split][:n]
    if not rows:
        raise SystemExit(f"{corpus}: no '{split}' utterances")
    return [(r["text"], load_audio(corpus / r["audio_filepath"], sample_rate), r.get("entity")) for r in rows]


def entity_rate(clips: list[tuple[str, torch.Tensor, str | None]], heard: list[str]) -> float | str:
    """Share of the clips that name an entity whose entity is in the judge's transcript."""
    from toolkit.evaluation import contains_answer

    named = [(clip[2], h) for clip, h in zip(clips, heard) if clip[2]]
    return sum(contains_answer(h, e) for e, h in named) / len(named) if named else "n/a"


def first_chunk_latency(tokenizer, decoder, wav: torch.Tensor) -> tuple[float, float]:
    """Streaming both ends with input fed 20 ms at a time: (compute seconds until the first
    synthesized samples, seconds of input audio consumed by then = algorithmic latency)."""
    rate = tokenizer.sample_rate  # of the input wav
    start = time.perf_counter()
    enc, dec = tokenizer.stream_encoder(), decoder.stream_decoder(None)
    step = rate // 50  # 20 ms of input at a time
    for i in range(0, len(wav), step):
        out = dec.push(enc.push(wav[i:i + step]))
        if out.numel():
            return time.perf_counter() - start, (i + step) / rate
    dec.push(enc.flush())
    dec.flush()
    return time.perf_counter() - start, len(wav) / rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decoder-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="inference parameters of the decoder to change (numbers)")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    from toolkit.evaluation import Judge, wer
    from toolkit.persist.components import load_trained
    from toolkit.io import write_json

    run = Path(args.run_dir)
    tokenizer, decoder = load_trained(run, "tokenizer"), load_trained(run, "decoder")
    for key, _, value in (item.partition("=") for item in args.decoder_set):
        if not value or not hasattr(decoder.params, key):
            raise SystemExit(f"--decoder-set {key}={value}: not KEY=NUMBER for a decoder parameter")
        setattr(decoder.params, key, type(getattr(decoder.params, key))(float(value)))
    clips = held_out(run, args.split, args.n, tokenizer.sample_rate)
    judge = Judge()
    seconds = sum(len(w) for _, w, _ in clips) / tokenizer.sample_rate
    t_enc = t_dec = 0.0
    resynth, spelled, counts = [], [], torch.zeros(tokenizer.codebook_size)
    can_spell = getattr(getattr(tokenizer, "params", None), "ctc", 0) > 0
    with torch.no_grad():
        for _, wav, _ in clips:
            t = time.perf_counter()
            codes, _ = tokenizer.encode(wav[None])
            t_enc += time.perf_counter() - t
            counts += torch.bincount(codes[0], minlength=tokenizer.codebook_size).float()
            if can_spell:
                spelled.append(tokenizer.spell_codes(codes[0]))
            t = time.perf_counter()
            resynth.append(decoder.decode(codes)[0][: len(wav)])
            t_dec += time.perf_counter() - t
        latency = first_chunk_latency(tokenizer, decoder, clips[0][1])
    refs = [text for text, _, _ in clips]
    heard_orig = judge.transcribe([w for _, w, _ in clips], tokenizer.sample_rate)
    heard_resynth = judge.transcribe(resynth, decoder.sample_rate)
    wer_orig, wer_resynth = wer(refs, heard_orig), wer(refs, heard_resynth)
    probs = counts / counts.sum()
    perplexity = math.exp(float(-(probs * probs.clamp(min=1e-10).log()).sum()))
    spelled_key, spelled_wer = "wer_codes_spelled", "n/a"
    if can_spell:
        spelled_key = f"wer_codes_spelled_{tokenizer.ctc.labels}"
        spelled_wer = wer([tokenizer.ctc.reference(t) for t in refs], spelled, normalize=False)
    result = {"utterances": len(clips), "audio_seconds": seconds, "wer_original": wer_orig,
              "wer_resynth": wer_resynth, "entity_rate_original": entity_rate(clips, heard_orig),
              "entity_rate_resynth": entity_rate(clips, heard_resynth), spelled_key: spelled_wer,
              "perplexity": perplexity,
              "usage": float((counts > 0).float().mean()), "rtf_encode": t_enc / seconds,
              "rtf_decode": t_dec / seconds, "first_chunk_compute_s": latency[0],
              "first_chunk_audio_s": latency[1],
              "threads": args.threads, "decoder_set": " ".join(args.decoder_set) or "-"}
    write_json(run / ("-".join(["codec_benchmark", *args.decoder_set]) + ".json"), result)
    print(f"| metric | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")


if __name__ == "__main__":
    main()
