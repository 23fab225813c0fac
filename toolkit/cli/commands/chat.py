"""``chat MODEL --audio q.wav --out a.wav`` (or ``--text``): answer one question, streaming."""

import argparse

HELP = "answer a spoken or written question with a trained model, streaming the answer audio"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="run folder or exported model folder")
    q = parser.add_mutually_exclusive_group(required=True)
    q.add_argument("--audio", help="spoken question (an audio file)")
    q.add_argument("--text", help="written question")
    parser.add_argument("--out", help="answer audio (.wav), written while it is generated")
    parser.add_argument("--mode", choices=["s2s", "s2t", "t2s", "t2t"],
                        help="default: s2s for --audio, t2s for --text (t2t/s2t without --out)")
    parser.add_argument("--voice", help="reference clip whose voice the decoder imitates")
    parser.add_argument("--stage", metavar="STAGE",
                        help="of a run folder: export, sft, stage2, stage1, or latest (the newest "
                             "that loads, said in one line). Default: the run's export if it has "
                             "one, else its newest LM stage; a damaged one is an error, not skipped")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--min-new-tokens", type=int, default=0,
                        help="speech codes before the answer may end")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--text-temperature", type=float, help="text channel (default: --temperature)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-tokens", type=int, default=8, help="positions per streamed piece")


def _mode(args: argparse.Namespace) -> str:
    from toolkit.errors import ToolkitError

    mode = args.mode or ("s" if args.audio else "t") + "2" + ("s" if args.out else "t")
    if (mode[0] == "s") != bool(args.audio):
        raise ToolkitError(f"mode {mode} needs {'--audio' if mode[0] == 's' else '--text'}")
    if mode[2] == "s" and not args.out:
        raise ToolkitError(f"mode {mode} answers in speech: give --out answer.wav")
    return mode


def main(args: argparse.Namespace) -> int:
    import sys

    import torch

    from toolkit.data.audio import load_audio
    from toolkit.speech_lm.inference import generation_config, respond
    from toolkit.data.wavstream import StreamingWav
    from toolkit.loading import load
    from toolkit.sampling import SamplingParams

    mode = _mode(args)
    question = load_audio(args.audio, 16000) if args.audio else args.text  # validates the file early
    lm = load(args.model, args.stage).eval()
    if args.audio:
        question = load_audio(args.audio, lm.tokenizer.sample_rate)
    speech = SamplingParams(args.temperature, args.top_k, args.top_p, args.repetition_penalty)
    text_t = args.temperature if args.text_temperature is None else args.text_temperature
    text = SamplingParams(text_t, args.top_k, args.top_p, args.repetition_penalty)
    config = generation_config(args.max_new_tokens, text, speech, args.min_new_tokens)
    voice = None
    if args.voice:
        ref = load_audio(args.voice, lm.decoder.sample_rate)
        voice = lm.decoder.make_prompt(ref)
    sink = StreamingWav(args.out, lm.decoder.sample_rate) if mode[2] == "s" else None
    generator = torch.Generator().manual_seed(args.seed)
    answer = respond(lm, question, mode, config=config, voice=voice,
                     on_audio=sink.append if sink else None, chunk_tokens=args.chunk_tokens,
                     generator=generator)
    if answer.text.strip():
        print(answer.text.strip())
    if sink is not None:
        ttfa = "-" if answer.first_audio_s is None else f"{answer.first_audio_s:.3f} s"
        rtf = "-" if answer.rtf is None else f"{answer.rtf:.2f}"
        print(f"time to first audio: {ttfa}; {sink.seconds:.2f} s of audio in {sink.writes - 1} "
              f"pieces; real-time factor {rtf} -> {args.out}", file=sys.stderr)
    return 0
