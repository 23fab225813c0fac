"""The quick hearing probe: ``python benchmarks/hearing_probe.py [--run RUN_DIR] [--split val]
[--n 60] [--steps 60] [--name NAME] [--codes-only | --rescore] [KEY=VALUE ...]``.

Trains stage I alone on a run's corpus and speech tokenizer (``runs/moss_full`` by default;
its ``corpus`` and ``tokenizer`` stages are run first when missing) with the recipe's stage1
settings, ``--steps`` steps (``0``: the recipe's count) and any ``KEY=VALUE`` recipe overrides
(e.g. ``stage_args.stage1.speech_init=aligned``), then
prints the hearing measure: the trained model transcribes held-out utterances of ``--split``
(``val`` by default: choose designs there, not on ``test``) from their speech codes, next to
the ASR judge on the original audio, and what the speech input spells by cosine to the text
embedding (``spelled``: what the hearing CTC loss trains; see toolkit.speech_lm.hearing_ctc),
and what the codes carry at all (the tokenizer's own phoneme head: PER, names unbroken).
Each try goes into ``RUN_DIR/probes/NAME`` (with ``hearing.jsonl``: every utterance's text,
name, the LM's transcript, the spelling and the judge's transcript) and appends its row to
``RUN_DIR/probes/results.jsonl``, so tries can be compared side by side. ``--codes-only``
trains nothing and prints only the codes line: a tokenizer try (e.g. a new ``--run`` with
``tokenizer.params.codebook_size=4096``) costs its tokenizer stage and a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from toolkit.evaluation.phonemes import code_phonemes, corpus_names


def ensure_inputs(run: Path, recipe: Path, overrides: list[str]) -> None:
    """Run the corpus and tokenizer stages of ``recipe`` with ``overrides`` (e.g. a data or
    tokenizer setting under test) into ``run`` unless complete."""
    from toolkit.run_folder import is_complete
    from toolkit.runner import run_recipe

    if not (is_complete(run / "corpus") and is_complete(run / "tokenizer")):
        run_recipe(recipe, [f"out={run}", *overrides], only=["corpus", "tokenizer"])


def link_inputs(run: Path, probe: Path) -> None:
    """Make ``probe`` a run folder sharing ``run``'s corpus, tokenizer and speech-code cache."""
    probe.mkdir(parents=True, exist_ok=True)
    for name in ("corpus", "tokenizer", "cache"):
        target = probe / name
        if not target.exists() and (run / name).exists():
            os.symlink((run / name).resolve(), target)


def encoded_utterances(run: Path, split: str, n: int) -> tuple[list[dict], object, list]:
    """``n`` named utterances of ``run``'s ``split``, its tokenizer and their codes."""
    from toolkit.evaluation.ladder import encode_utterances, ladder_utterances
    from toolkit.persist.components import load_run_component

    utts = ladder_utterances(run / "corpus", split, n)
    if not utts:
        raise SystemExit(f"{run / 'corpus'}: no '{split}' utterances with an entity name")
    tokenizer = load_run_component(run, "tokenizer")[0]
    return utts, tokenizer, encode_utterances(tokenizer, utts, run / "corpus")


def codes_carried(run: Path, split: str, n: int) -> dict | None:
    """:func:`code_phonemes` of ``run``'s tokenizer on ``n`` utterances of ``split``."""
    utts, tokenizer, codes = encoded_utterances(run, split, n)
    return code_phonemes(tokenizer, utts, codes, corpus_names(run / "corpus"))


def hearing(run: Path, probe: Path, split: str, n: int) -> dict:
    """Hearing of the probe's stage1 model on ``split``, with the judge's ceiling."""
    from toolkit.evaluation import Judge
    from toolkit.evaluation.ladder import judge_transcripts, score, transcribe
    from toolkit.persist.split_model import load_stage_model
    from toolkit.speech_lm.hearing_ctc import greedy_tokens

    utts, tokenizer, codes = encoded_utterances(run, split, n)
    model = load_stage_model(probe / "stage1")[0]
    heard = transcribe(model, codes)
    spelled = [model.text_tokenizer.decode(greedy_tokens(model, c)) for c in codes]
    judged = judge_transcripts(Judge(), utts, run / "corpus")
    return {"lm": score(utts, heard), "judge": score(utts, judged), "spelled": score(utts, spelled),
            "codes": code_phonemes(tokenizer, utts, codes, corpus_names(run / "corpus")),
            "samples": [{"text": u["text"], "entity": u["entity"], "heard": h, "spelled": sp, "judge": j}
                        for u, h, sp, j in zip(utts, heard, spelled, judged)]}


def print_codes(c: dict | None) -> None:
    """One line on what the codes carry (nothing for a tokenizer without a phoneme head)."""
    if c:
        print(f"codes: the tokenizer's phoneme head reads them at PER {c['per']:.3f}; a name's "
              f"phonemes appear unbroken in {c['entity_exact']:.3f} of utterances; the closest of "
              f"the corpus's {c['names']} names is the right one in {c['entity_closest']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/moss_full", type=Path,
                        help="the run whose corpus and tokenizer the probe uses")
    parser.add_argument("overrides", nargs="*", help="recipe KEY=VALUE overrides for the try")
    parser.add_argument("--recipe", default="recipes/moss_full.yaml", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--n", type=int, default=60, help="utterances to transcribe")
    parser.add_argument("--name", default=None, help="the try's folder (default: from the overrides)")
    parser.add_argument("--codes-only", action="store_true",
                        help="train nothing: print only what the run's codes carry (a tokenizer try)")
    parser.add_argument("--rescore", action="store_true",
                        help="train nothing: measure the try --name trained before (e.g. to get its hearing.jsonl)")
    parser.add_argument("--steps", type=int, default=60,
                        help="stage I steps (the recipe's own count when 0; 60 fit in 10 minutes "
                             "on 2 cores with native bf16)")
    args = parser.parse_args()
    if args.steps:
        args.overrides.insert(0, f"stage_args.stage1.max_steps={args.steps}")

    import shutil

    from toolkit.io import write_text
    from toolkit.run_folder import is_complete
    from toolkit.runner import run_recipe

    ensure_inputs(args.run, args.recipe, args.overrides)
    if args.codes_only:
        print_codes(codes_carried(args.run, args.split, args.n))
        return
    name = args.name or ("-".join(o.split(".")[-1] for o in args.overrides) or "recipe")
    probe = args.run / "probes" / name
    train_s = None
    if not args.rescore:
        for stale in (probe / "stage1", probe / "stage1.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        link_inputs(args.run, probe)
        start = time.perf_counter()
        run_recipe(args.recipe, [f"out={probe}", *args.overrides], only=["stage1"])
        train_s = round(time.perf_counter() - start, 1)
    elif not is_complete(probe / "stage1"):
        raise SystemExit(f"--rescore: {probe / 'stage1'} is not a finished stage I")
    result = hearing(args.run, probe, args.split, args.n)
    metrics = json.loads((probe / "stage1" / "model.json").read_text()).get("metrics", {})
    row = {"name": name, "overrides": args.overrides, "split": args.split, "train_s": train_s,
           "train_loss": metrics.get("train/loss"), **{k: result[k] for k in ("lm", "judge", "spelled", "codes")}}
    write_text(probe / "hearing.jsonl", "".join(json.dumps(r) + "\n" for r in result["samples"]))
    with open(args.run / "probes" / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    lm, judge = result["lm"], result["judge"]
    print(f"\nhearing probe '{name}' on {lm['n']} {args.split} utterances "
          f"({'stage1 reused' if train_s is None else f'stage1 {train_s:.0f} s'})")
    print(f"{'':10} {'entity rate':>12} {'WER':>8}")
    print(f"{'LM':10} {lm['entity_rate']:>12.3f} {lm['wer']:>8.3f}")
    print(f"{'judge':10} {judge['entity_rate']:>12.3f} {judge['wer']:>8.3f}")
    spelled = result["spelled"]  # the speech input read by cosine to the text embedding
    print(f"{'spelled':10} {spelled['entity_rate']:>12.3f} {spelled['wer']:>8.3f}")
    print_codes(result["codes"])
    print(f"{'ratio':10} {lm['entity_rate'] / max(judge['entity_rate'], 1e-9):>12.3f}")
    for s in result["samples"][:5]:
        print(f"  {s['text']!r} -> {s['heard']!r} (spelled {s['spelled']!r})")


if __name__ == "__main__":
    main()
