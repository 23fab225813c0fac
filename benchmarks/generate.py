"""Generation speed of the ``llama`` trunk against ``transformers.generate`` on the same weights.

    python benchmarks/generate.py [--checkpoint smollm2-135m-instruct] [--new-tokens 128]
                                  [--repeats 3] [--threads 1] [--dtype fp32]

Both run greedy, batch 1, exactly ``--new-tokens`` new tokens (no early stop), in this process,
alternating runs; medians are reported. Time to first token (TTFT) covers the prompt forward
and the first choice; tokens/s counts the decode steps after the first token. The
``transformers`` model is built from our weights (saved in Hugging Face format to a temp dir).
Rows: ``ours`` (fp32, numerically equal to transformers; its speed comes from
:class:`toolkit.nn.FastLinear`: decoding streams each weight as column panels over all cores
instead of ``F.linear``'s single-core pass, prompts use oneDNN's packed weights), ``ours int4`` (the GGUF's own 4-bit
blocks through PyTorch's int4 CPU kernel with bf16 activations: approximate, llama.cpp-style;
only when the checkpoint is a Q4 GGUF) and ``transformers``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import toolkit  # noqa: E402
from toolkit.nn import Int4Linear  # noqa: E402
from toolkit.textgen import generate  # noqa: E402

PROMPT = "Explain in a few sentences why the sky is blue."


def time_ours(trunk, prompt: list[int], new: int) -> tuple[float, float]:
    """(ttft seconds, decode tokens/s) for one greedy generation with our generator."""
    stamps: list[float] = []
    start = time.perf_counter()
    out = generate(trunk, [prompt], max_new_tokens=new, on_token=lambda r, t: stamps.append(time.perf_counter()))
    assert len(out[0]) == new
    return stamps[0] - start, (new - 1) / (stamps[-1] - stamps[0])


class _Stamps:
    """A ``transformers`` streamer that records when each new token arrives."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first pushes the prompt
            self.prompt_seen = True
            return
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def time_hf(model, prompt: list[int], new: int) -> tuple[float, float]:
    streamer = _Stamps()
    ids = torch.tensor([prompt])
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                             do_sample=False, streamer=streamer)
    assert out.shape[1] - ids.shape[1] == new
    s = streamer.stamps
    return s[0] - start, (new - 1) / (s[-1] - s[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="smollm2-135m-instruct")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads for both (default: all cores)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers
    from rich.console import Console
    from rich.table import Table

    transformers.logging.set_verbosity_error()
    ours = toolkit.build("trunk", "llama", checkpoint=args.checkpoint, dtype=args.dtype).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        hf = transformers.AutoModelForCausalLM.from_pretrained(
            tmp, dtype=ours.embed_tokens.weight.dtype).eval()
    hf.generation_config.eos_token_id = None  # always produce exactly --new-tokens
    hf.generation_config.pad_token_id = 0
    fast = toolkit.build("trunk", "llama", checkpoint=args.checkpoint, dtype=args.dtype,
                         int4_kernels=True).eval()
    if not any(isinstance(m, Int4Linear) for m in fast.modules()):
        fast = None
    tok = ours.text_tokenizer
    prompt = tok.chat([{"role": "user", "content": PROMPT}]) if tok else list(range(1, 40))
    time_ours(ours, prompt, 4), time_hf(hf, prompt, 4)  # warm up
    if fast is not None:
        time_ours(fast, prompt, 4)
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "ours int4": [], "transformers": []}
    for _ in range(args.repeats):
        runs["ours"].append(time_ours(ours, prompt, args.new_tokens))
        if fast is not None:
            runs["ours int4"].append(time_ours(fast, prompt, args.new_tokens))
        runs["transformers"].append(time_hf(hf, prompt, args.new_tokens))
    runs = {k: v for k, v in runs.items() if v}
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in runs.items()}
    table = Table(title=f"{args.checkpoint} ({args.dtype}), batch 1, prompt {len(prompt)} tokens, "
                        f"{args.new_tokens} new tokens, {args.threads} thread(s), median of {args.repeats}")
    for col in ("", "TTFT (ms)", "decode tokens/s"):
        table.add_column(col, justify="right")
    for name, (ttft, tps) in med.items():
        table.add_row(name, f"{ttft * 1000:.1f}", f"{tps:.1f}")
    h_ttft, h_tps = med["transformers"]
    for name in ("ours", "ours int4"):
        if name in med:
            o_ttft, o_tps = med[name]
            table.add_row(f"{name} / transformers speed-up", f"{h_ttft / o_ttft:.2f}x",
                          f"{o_tps / h_tps:.2f}x")
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
