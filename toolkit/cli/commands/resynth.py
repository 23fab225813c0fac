"""``resynth RUN_DIR --audio in.wav --out out.wav [--voice ref.wav]``: audio -> codes -> audio."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

HELP = "encode a recording with a run's trained tokenizer and speak it back with its decoder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run folder with complete tokenizer and decoder stages")
    parser.add_argument("--audio", required=True, help="input audio file (any rate, mono or stereo)")
    parser.add_argument("--out", required=True, help="output WAV file")
    parser.add_argument("--voice", help="reference clip for the voice (default: the input itself); "
                                        "its first 3 s are used (toolkit.contracts.VOICE_PROMPT_SECONDS)")
    parser.add_argument("--codes", help="also write the codes, one line of integers, to this file")


def read_clip(path: str, sample_rate: int, what: str):
    """A file as mono float ``wav[T]`` at ``sample_rate``, with one-line errors."""
    import soundfile as sf
    import torch

    from toolkit.audio_features import prepare_waveform
    from toolkit.errors import ToolkitError

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as err:
        raise ToolkitError(f"{path}: cannot read {what} audio ({err})") from None
    return prepare_waveform(torch.from_numpy(data.T.copy()), rate, sample_rate, f"{path}")


def voice_prompt(tokenizer: Any, decoder: Any, voice: Tensor | None) -> Any:
    """A decoder voice prompt from ``voice[T_v]`` at the tokenizer's rate (None without a voice
    or a decoder that takes none). Only the first :data:`toolkit.contracts.VOICE_PROMPT_SECONDS`
    are read (and encoded), so the prompt has a fixed cost however long the voice (by default
    the whole input) is."""
    from toolkit.audio_features import resample
    from toolkit.contracts import voice_prompt_clip

    if voice is None or not hasattr(decoder, "make_prompt"):
        return None
    voice = voice_prompt_clip(voice, tokenizer.sample_rate)
    voice_dec = resample(voice, tokenizer.sample_rate, decoder.sample_rate)
    voice_codes, _ = tokenizer.encode(voice[None])
    try:
        return decoder.make_prompt(voice_dec, voice_codes[0][: max(1, voice_codes.shape[1] - 1)])
    except NotImplementedError:  # a decoder that takes no voice prompt
        return None


def resynthesize(tokenizer: Any, decoder: Any, wav: Tensor,
                 voice: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``wav[T]`` at the tokenizer's rate -> (``codes[L]``, ``wav[T']`` at the decoder's rate).

    Silent or very short input gives silence of the same length; long input is encoded in the
    tokenizer's windows and decoded in the decoder's chunks (both stream). The voice prompt is
    capped (:func:`voice_prompt`), so the time taken grows linearly with the input's length."""
    import torch

    with torch.no_grad():
        codes, _ = tokenizer.encode(wav[None])
        codes = codes[0]
        stream = decoder.stream_decoder(voice_prompt(tokenizer, decoder, voice))
        pieces = [stream.push(codes[i: i + 50]) for i in range(0, len(codes), 50)]
        out = torch.cat(pieces + [stream.flush()])
    return codes, out[: round(len(wav) * decoder.sample_rate / tokenizer.sample_rate)]


def main(args: argparse.Namespace) -> int:
    import soundfile as sf
    import torch

    from toolkit.errors import ToolkitError
    from toolkit.io import atomic_write, write_text
    from toolkit.persist.components import load_trained

    torch.set_flush_denormal(True)
    run = Path(args.run_dir)
    for stage in ("tokenizer", "decoder"):
        if not (run / stage / f"{stage}.json").is_file():
            raise ToolkitError(f"{run}: no trained {stage} (run the {stage} stage first)")
    tokenizer, decoder = load_trained(run, "tokenizer"), load_trained(run, "decoder")
    wav = read_clip(args.audio, tokenizer.sample_rate, "input")
    if wav.abs().max() < 1e-4:
        print(f"note: {args.audio} is silent")
    voice = read_clip(args.voice, tokenizer.sample_rate, "voice") if args.voice else wav
    codes, out = resynthesize(tokenizer, decoder, wav, voice)
    out = out.clamp(-1, 1).numpy()
    atomic_write(args.out, lambda tmp: sf.write(str(tmp), out, decoder.sample_rate, format="WAV"))
    if args.codes:
        write_text(args.codes, " ".join(map(str, codes.tolist())) + "\n")
    print(f"{args.audio}: {len(wav) / tokenizer.sample_rate:.2f} s -> {len(codes)} codes "
          f"-> {args.out} ({len(out) / decoder.sample_rate:.2f} s)")
    return 0
