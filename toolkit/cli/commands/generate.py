"""``generate --trunk PATH_OR_ALIAS --prompt TEXT``: stream a trunk's completion of a prompt."""

from __future__ import annotations

import argparse
import sys

HELP = "complete a text prompt with a trunk (greedy unless sampling flags are given), streamed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trunk", required=True,
                        help="Hugging Face folder, .gguf file or alias (smollm2-135m-instruct)")
    parser.add_argument("--plugin", default="llama", help="trunk plugin name (default: llama)")
    parser.add_argument("--prompt", required=True, help="the prompt text")
    parser.add_argument("--chat", action="store_true",
                        help="wrap the prompt as a user turn in the model's chat template")
    parser.add_argument("--system", help="system message (with --chat)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, help="> 0 samples (default: greedy)")
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="random seed for sampling")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--int4", action="store_true",
                        help="fast approximate CPU decoding of a Q4 GGUF (4-bit kernel)")


def main(args: argparse.Namespace) -> int:
    import torch

    from toolkit.errors import ToolkitError
    from toolkit.registry import build
    from toolkit.sampling import SamplingParams
    from toolkit.textgen import generate

    # --top-k / --top-p alone mean sampling at temperature 1 (as in transformers)
    filtered = args.top_k > 0 or args.top_p < 1.0
    temperature = args.temperature if args.temperature is not None else float(filtered)
    params = SamplingParams(temperature=temperature,
                            top_k=args.top_k, top_p=args.top_p,
                            repetition_penalty=args.repetition_penalty)
    extra = {"int4_kernels": True} if args.int4 else {}
    trunk = build("trunk", args.plugin, checkpoint=args.trunk, dtype=args.dtype, **extra).eval()
    tok = trunk.text_tokenizer
    if tok is None:
        raise ToolkitError(f"{args.trunk}: no tokenizer found (tokenizer.json or GGUF metadata)")
    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system else [])
        prompt = tok.chat(messages + [{"role": "user", "content": args.prompt}])
    else:
        prompt = tok.encode(args.prompt)
    stream = _Streamer(tok, set(tok.eos_ids))
    generate(trunk, [prompt], max_new_tokens=args.max_new_tokens, sampling=params,
             stop_ids=tok.eos_ids, on_token=stream, pad_id=tok.pad_id,
             generator=torch.Generator().manual_seed(args.seed))
    stream.finish()
    return 0


class _Streamer:
    """Prints decoded text as tokens arrive, holding back incomplete UTF-8 sequences."""

    def __init__(self, tokenizer, stops: set[int]) -> None:
        self.tokenizer, self.stops = tokenizer, stops
        self.ids: list[int] = []
        self.printed = 0

    def __call__(self, row: int, token: int) -> None:
        if token in self.stops:
            return
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
            return
        sys.stdout.write(text[self.printed:])
        sys.stdout.flush()
        self.printed = len(text)

    def finish(self) -> None:
        text = self.tokenizer.decode(self.ids)
        sys.stdout.write(text[self.printed:] + "\n")
        sys.stdout.flush()
