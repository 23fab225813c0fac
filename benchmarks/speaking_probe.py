"""The quick speaking probe: ``python benchmarks/speaking_probe.py [--run RUN_DIR] [--stage STAGE]
[--split val] [--n 60] [--steps 600] [--lr 1e-3] [--uncompressed] [--no-read]``.

Does the speech branch of a trained run say the text it is given, or speech of its own? It
trains the speech branch and head alone on text-to-speech (every transcribed training
utterance: its text, then its speech codes), with the frozen rest of the model run once: the
hidden states at the split point are computed for every utterance up front, so a step costs only
the branch (about 1 s for 32 utterances on a 2-core CPU, against 6-8 s for an LM stage step).
Before and after, it prints:

- **text dependence**: the branch's cross-entropy (nats per speech code) on held-out utterances
  of ``--split`` read from their own text, and from another utterance's text. A speaker that
  reads its text scores its own much better; equal numbers mean the text is ignored;
- **speaking** (after training, unless ``--no-read``): the model reads the same sentences aloud
  (greedy), the run's decoder voices them and the ASR judge scores WER and names, next to the
  judge on the resynthesis of their own audio (the decoder's ceiling).

Nothing is written into the run: one JSON line per try goes to ``RUN_DIR/probes/speaking.jsonl``.
``--uncompressed`` switches off ``speech_compress`` / ``speech_snap`` for the whole probe.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BATCH = 32
"""Utterances per training step."""


def tts_examples(model: nn.Module, pairs: list[tuple[str, Tensor]]) -> list[dict]:
    """``(text, codes[n])`` pairs -> TTS examples (text, ``sosp``, codes, ``eosp``)."""
    from toolkit.speech_lm.sequences import pretraining_example

    return [pretraining_example("tts", model.text_tokenizer, model.tokens, codes=c, text=t) for t, c in pairs]


@torch.no_grad()
def split_states(model: nn.Module, examples: list[dict], precision: torch.dtype | None,
                 batch_size: int = 64) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Each example's ``(hidden[n,D], positions[n], visible[n], labels[n])`` at the split point:
    what the speech branch receives, its attention context, and the speech targets (-100 off).

    The states are caught at the last shared block, so compression, adapters and the reader
    act exactly as in the model's own forward."""
    from toolkit.speech_lm.data import collate
    from toolkit.speech_lm.layout import SPEECH

    caught: dict = {}
    hook = model.shared[-1].register_forward_hook(
        lambda _m, args, out: caught.update(x=out, ctx=args[1]))
    out = []
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            batch = collate(chunk, model.tokens, model.text_tokenizer.pad_id)  # as LM stages batch
            with torch.autocast("cpu", dtype=precision, enabled=precision is not None):
                model.forward_hidden(batch["input_ids"], ("speech",))
            ctx = caught["ctx"]
            for i, e in enumerate(chunk):
                n = len(e["input_ids"])
                visible = ctx.key_padding[i, :n] if ctx.key_padding is not None else torch.ones(n, dtype=torch.bool)
                labels = torch.where(e["target_modality"] == SPEECH, e["labels"], -100)
                out.append((caught["x"][i, :n].clone(), ctx.positions[i, :n].clone(), visible.clone(), labels))
    finally:
        hook.remove()
    return out


def branch_loss(model: nn.Module, items: list, precision: torch.dtype | None) -> Tensor:
    """Mean cross-entropy of the speech branch and head over the speech targets of ``items``
    (right-padded into one batch)."""
    from toolkit.nn.context import AttentionContext

    length, dim = max(len(i[3]) for i in items), items[0][0].shape[1]
    x = torch.zeros(len(items), length, dim, dtype=items[0][0].dtype)
    positions = torch.ones(len(items), length, dtype=torch.long)
    visible = torch.zeros(len(items), length, dtype=torch.bool)
    labels = torch.full((len(items), length), -100, dtype=torch.long)
    for i, (h, p, v, lab) in enumerate(items):
        n = len(lab)
        x[i, :n], positions[i, :n], visible[i, :n], labels[i, :n] = h, p, v, lab
    branch = model.branches["speech"]
    with torch.autocast("cpu", dtype=precision, enabled=precision is not None):
        ctx = AttentionContext(positions, visible, model.rotary(positions, dtype=x.dtype))
        for block in branch.layers:
            x = block(x, ctx, kv=None)
        scored = labels >= 0
        logits = branch.head(branch.norm(x[scored]))
    return F.cross_entropy(logits.float(), labels[scored])


@torch.no_grad()
def mean_loss(model: nn.Module, items: list, precision: torch.dtype | None) -> float:
    """:func:`branch_loss` over ``items`` in batches, weighted by batch size."""
    return sum(float(branch_loss(model, items[s:s + BATCH], precision)) * len(items[s:s + BATCH])
               for s in range(0, len(items), BATCH)) / len(items)


def train_branch(model: nn.Module, items: list, steps: int, lr: float, precision, seed: int) -> float:
    """AdamW on the speech branch and head only (warmup, cosine to 0.1 ``lr``); returns the mean
    loss of the last 10 % of the steps."""
    from rich.progress import Progress

    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.branches["speech"].parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    rng, tail = random.Random(seed), []
    with Progress(transient=True) as progress:
        task = progress.add_task("speech branch on text-to-speech", total=steps)
        for step in range(steps):
            loss = branch_loss(model, rng.sample(items, min(BATCH, len(items))), precision)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            if step >= steps - max(1, steps // 10):
                tail.append(float(loss.detach()))
            progress.update(task, completed=step + 1)
    for p in params:
        p.requires_grad_(False)
    return sum(tail) / max(len(tail), 1)


def text_dependence(model, own: list, other: list, precision) -> dict:
    """CE reading each held-out utterance's own text vs another's, and the gap."""
    a, b = mean_loss(model, own, precision), mean_loss(model, other, precision)
    return {"own_text": round(a, 3), "other_text": round(b, 3), "gap": round(b - a, 3)}


def speaking(lm, judge, utts: list[dict], corpus: Path) -> dict:
    """The model reads ``utts`` aloud; judged next to the resynthesis of their own audio."""
    from toolkit.evaluation.ladder import encode_utterances, read_aloud, score, voiced_transcripts

    said = voiced_transcripts(lm, judge, read_aloud(lm.model, [u["text"] for u in utts]))
    resynth = voiced_transcripts(lm, judge, encode_utterances(lm.tokenizer, utts, corpus))
    return {"said": score(utts, said), "resynthesis": score(utts, resynth),
            "samples": [{"text": u["text"], "said": s} for u, s in list(zip(utts, said))[:5]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/moss_full", type=Path)
    parser.add_argument("--stage", default=None, help="LM stage to load (default: the run's export or newest)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--n", type=int, default=60, help="held-out utterances to measure")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uncompressed", action="store_true", help="switch off speech_compress / speech_snap")
    parser.add_argument("--no-read", action="store_true", help="skip reading aloud (text dependence only)")
    args = parser.parse_args()
    from toolkit import load
    from toolkit.data.token_cache import build_token_cache
    from toolkit.evaluation.ladder import ladder_utterances
    from toolkit.io import read_jsonl
    from toolkit.machine import native_bf16

    torch.manual_seed(args.seed)
    precision = torch.bfloat16 if native_bf16()[0] else None
    lm = load(args.run, args.stage).eval()
    model, corpus = lm.model, args.run / "corpus"
    if args.uncompressed:
        model.params.speech_compress = model.params.speech_snap = False
    rows = read_jsonl(corpus / "utterances.jsonl")
    cache = build_token_cache(lm.tokenizer, rows, corpus, args.run / "cache" / "speech_codes")
    codes = lambda u: torch.as_tensor(cache.get(u["id"]), dtype=torch.long)  # noqa: E731
    train = [u for u in rows if u.get("split") == "train" and u.get("text") and str(u["id"]) in cache]
    held = [u for u in ladder_utterances(corpus, args.split, args.n) if str(u["id"]) in cache]
    if not held:
        raise SystemExit(f"{corpus}: no '{args.split}' utterances with an entity name")
    started = time.time()
    items = split_states(model, tts_examples(model, [(u["text"], codes(u)) for u in train]), precision)
    own = split_states(model, tts_examples(model, [(u["text"], codes(u)) for u in held]), precision)
    other = split_states(model, tts_examples(model, [(held[(i + 1) % len(held)]["text"], codes(u))
                                                     for i, u in enumerate(held)]), precision)
    cached = time.time() - started
    before = text_dependence(model, own, other, precision)
    started = time.time()
    final = train_branch(model, items, args.steps, args.lr, precision, args.seed) if args.steps else float("nan")
    seconds = time.time() - started
    after = text_dependence(model, own, other, precision)
    print(f"{len(items)} training utterances cached in {cached:.0f} s; {args.steps} steps in {seconds:.0f} s, "
          f"final training CE {final:.3f}")
    print(f"{'held-out CE (nats/code)':<26}{'own text':>10}{'other text':>12}{'gap':>8}")
    for label, d in (("before", before), ("after", after)):
        print(f"{label:<26}{d['own_text']:>10.3f}{d['other_text']:>12.3f}{d['gap']:>8.3f}")
    record = {"run": str(args.run), "stage": args.stage, "split": args.split, "n": len(held),
              "steps": args.steps, "lr": args.lr, "seed": args.seed, "uncompressed": args.uncompressed,
              "train_ce": final, "before": before, "after": after}
    if not args.no_read:
        from toolkit.evaluation import Judge

        record["speaking"] = read = speaking(lm.eval(), Judge(), held, corpus)
        print(f"speaking after: WER {read['said']['wer']:.2f}, names {read['said']['entity_rate']:.0%}; "
              f"resynthesis WER {read['resynthesis']['wer']:.2f}, names {read['resynthesis']['entity_rate']:.0%}")
        for s in read["samples"]:
            print(f"  {s['text']!r} -> {s['said']!r}")
    out = args.run / "probes" / "speaking.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
