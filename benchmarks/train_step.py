"""Training throughput of the split model: our arrangement vs a naive one, same process.

Ours: only the branches some target needs run, each head only at its targets' positions, and
frozen parameters get no weight gradients (stage I trains the speech side only). Naive: both
branches and full logits every step, every weight gradient computed (the optimizer still
updates only the stage's trainable parameters, so both train the same thing).

    python benchmarks/train_step.py                 # tiny trunk and SmolLM2-135M (split -4)
    python benchmarks/train_step.py --trunks tiny --steps 5

Prints training tokens/s (non-padding positions per second of optimizer step) and the ratio.
On a shared CPU the numbers move with the other load: compare within one run.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

import toolkit
from toolkit.speech_lm import data
from toolkit.speech_lm.loss import losses_from_logits, split_lm_losses
from toolkit.speech_lm.module import set_trainable
from toolkit.speech_lm.sequences import pretraining_example

TINY = {"vocab_size": 4096, "hidden_size": 128, "num_layers": 6, "num_heads": 4, "num_kv_heads": 2,
        "intermediate_size": 384}
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hum".split()


def build(trunk_name: str, n_codes: int):
    if trunk_name == "tiny":
        trunk = toolkit.build("trunk", "llama", config=TINY)
        from toolkit.contracts import TextTokenizer

        class Bytes(TextTokenizer):  # the random tiny trunk has no tokenizer of its own
            eos_ids, pad_id = (2,), 0

            def encode(self, text): return [3 + b for b in text.encode()]
            def decode(self, ids): return ""
            def chat(self, messages, add_generation_prompt=True): return []

        tok = Bytes()
    else:
        trunk = toolkit.build("trunk", "llama", checkpoint="smollm2-135m-instruct")
        tok = trunk.text_tokenizer
    model = toolkit.build("splitter", "layer_split", trunk=trunk, split_at=-4,
                          codebook_size=n_codes)
    return model, tok


def batches(model, tok, stage: str, n_batches: int, batch: int, length: int, seed: int = 0):
    """Fixed batches of pre-training examples (stage II: 30% of targets from text-only data)."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ex = []
        while len(ex) < batch:
            kind = rng.choices(["continuation", "asr", "tts", "text"],
                               [0.6, 0.2, 0.2, 0.0 if stage == "stage1" else 0.45])[0]
            text = " ".join(rng.choices(WORDS, k=length // 6))
            codes = torch.randint(0, model.tokens.speech_vocab_size, (length // 2,), generator=g)
            e = pretraining_example(kind, tok, model.tokens, codes=codes, text=text,
                                    text_targets="after_speech" if stage == "stage1" else "all")
            if len(e["input_ids"]) <= length:
                ex.append(e)
        out.append(data.collate(ex, model.tokens, tok.pad_id))
    return out


def _step(model, batch, opt, naive: bool) -> float:
    start = time.perf_counter()
    if naive:
        loss = losses_from_logits(model(batch["input_ids"]), batch)["loss"]
    else:
        loss = split_lm_losses(model, batch)["loss"]
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def compare(model, batches_, stage: str) -> tuple[float, float]:
    """Tokens/s of ours and naive, alternating step by step (the first batch warms up) so
    that drifting load on a shared machine hits both alike."""
    sides = ("speech",) if stage == "stage1" else ("text", "speech")
    trainable = [p for ps in set_trainable(model, sides).values() for p in ps]
    opt = torch.optim.AdamW(trainable, lr=1e-6)
    seconds = {True: 0.0, False: 0.0}
    tokens = 0
    for i, batch in enumerate(batches_):
        for naive in (False, True):
            set_trainable(model, sides)
            if naive:
                for p in model.parameters():
                    p.requires_grad_(True)
            took = _step(model, batch, opt, naive)
            if i > 0:
                seconds[naive] += took
        if i > 0:
            tokens += int((batch["target_modality"] >= 0).sum())
    return tokens / seconds[False], tokens / seconds[True]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trunks", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per cell")
    parser.add_argument("--codes", type=int, default=16384, help="speech vocabulary")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    shapes = {"tiny": (8, 256), "smollm2": (2, 256)}
    rows = []
    for name in args.trunks:
        model, tok = build(name, args.codes)
        model.train()
        b, length = shapes[name]
        for stage in ("stage1", "stage2"):
            bs = batches(model, tok, stage, args.steps + 1, b, length)
            ours, naive = compare(model, bs, stage)
            rows.append((name, stage, f"{b}x{length}", ours, naive))
            print(f"{name:8s} {stage}: ours {ours:8.1f} tok/s  naive {naive:8.1f} tok/s  "
                  f"x{ours / naive:.2f}", flush=True)
    print("\n| trunk | stage | batch | ours tok/s | naive tok/s | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for name, stage, shape, ours, naive in rows:
        print(f"| {name} | {stage} | {shape} | {ours:.1f} | {naive:.1f} | {ours / naive:.2f}x |")
    print(f"\n(CPU, {torch.get_num_threads()} threads, shared with other work; fp32)")


if __name__ == "__main__":
    main()
