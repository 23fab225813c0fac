"""The quick speaking probe: ``python benchmarks/speaking_probe.py [--run RUN_DIR] [--stage STAGE]
[--split val] [--n 60] [--steps 600] [--lr 1e-3] [--extra N] [--vocab N] [--no-extra-names] [--uncompressed] [--by-word]
[--speech-init aligned] [--head-code-map] [--name-drill K] [--speech-dropout P] [--word-alone]
[--memorised N] [--house-voice] [--no-read]``.

Does the speech branch of a trained run say the text it is given, or speech of its own? It
trains the speech branch and head alone on text-to-speech (every transcribed training
utterance: its text, then its speech codes), with the frozen rest of the model run once: the
hidden states at the split point are computed for every utterance up front, so a step costs only
the branch (:mod:`toolkit.speech_lm.speaking_warmup`, as an LM stage's ``speaking_warmup``).
Before and after, it prints:

- **text dependence**: the branch's cross-entropy (nats per speech code) on held-out utterances
  of ``--split`` read from their own text, and from another utterance's text. A speaker that
  reads its text scores its own much better; equal numbers mean the text is ignored;
- **speaking** (after training, unless ``--no-read``): the model reads the same sentences aloud
  (greedy), the run's decoder voices them and the ASR judge scores WER and names, next to the
  judge on the resynthesis of their own audio (the decoder's ceiling);
- **memorised reading** (``--memorised N``): the phoneme head on N *training* sentences read
  aloud, which tells a branch that cannot speak at all from one that speaks only what it learnt.

Nothing is written into the run: one JSON line per try goes to ``RUN_DIR/probes/speaking.jsonl``.
``--uncompressed`` switches off ``speech_compress`` / ``speech_snap`` for the whole probe.
``--by-word`` trains and reads in the word-interleaved layout (task ``tts_words``: each word's
text, then its speech); text dependence then puts each segment under a wrong word of its own
sentence. ``--name-drill K`` adds every corpus name said alone in the house voice, drawn K times
as often as a sentence: a name is otherwise trained about 16 times against ~900 for a carrier word.
``--speech-dropout P`` zeroes each input speech code's split-point state with probability P while
the branch trains, so it must say a word from its text more than from the codes before it.
``--word-alone`` (with ``--by-word``) trains and reads every word as its own example, with no
sentence around it: a name learnt in one sentence then has no other sentence to be said in.
``--house-voice`` trains on the same training sentences re-synthesised by one speaker (under
``RUN/probes/tts_house``) instead of the corpus's many: does one voice make a word's codes, and
so reading, more predictable? (Compare its phoneme PER and judge WER with a run without it; its
text-dependence CE is on held-out speakers, so it also pays for the change of voice.)
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from toolkit.speech_lm.speaking_warmup import mean_branch_loss, split_states, train_branch


def tts_examples(model: nn.Module, pairs: list[tuple[str, Tensor]]) -> list[dict]:
    """``(text, codes[n])`` pairs -> TTS examples (text, ``sosp``, codes, ``eosp``)."""
    from toolkit.speech_lm.sequences import pretraining_example

    return [pretraining_example("tts", model.text_tokenizer, model.tokens, codes=c, text=t) for t, c in pairs]


def trained_branch(model: nn.Module, items: list, steps: int, lr: float, precision, seed: int,
                   input_dropout: float = 0.0) -> float:
    """:func:`train_branch` with a progress bar; its final training CE."""
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("speech branch on text-to-speech", total=steps)
        return train_branch(model, items, steps, lr, precision, seed,
                            on_step=lambda step, _: progress.update(task, completed=step),
                            input_dropout=input_dropout)


def text_dependence(model, own: list, other: list, precision) -> dict:
    """CE reading each held-out utterance's own text vs another's, and the gap."""
    a, b = mean_branch_loss(model, own, precision), mean_branch_loss(model, other, precision)
    return {"own_text": round(a, 3), "other_text": round(b, 3), "gap": round(b - a, 3)}


def speaking(lm, judge, utts: list[dict], said: list[Tensor], own: list[Tensor]) -> dict:
    """The codes the model ``said`` for ``utts`` voiced and judged, next to the resynthesis of
    the codes of their ``own`` audio."""
    from toolkit.evaluation.ladder import score, voiced_transcripts

    heard = voiced_transcripts(lm, judge, said)
    return {"said": score(utts, heard), "resynthesis": score(utts, voiced_transcripts(lm, judge, own)),
            "samples": [{"text": u["text"], "said": s} for u, s in list(zip(utts, heard))[:5]]}


def phoneme_reading(lm, utts: list[dict], said: list[Tensor], own: list[Tensor], corpus: Path) -> dict | None:
    """Decoder-free speaking: the codes the model ``said`` read by the tokenizer's own phoneme
    head (PER, share of names closest), next to the same on the codes of their ``own`` audio."""
    from toolkit.evaluation.phonemes import code_phonemes, corpus_names

    names = corpus_names(corpus)
    heard = code_phonemes(lm.tokenizer, utts, said, names)
    return None if heard is None else {"said": heard, "own_audio": code_phonemes(lm.tokenizer, utts, own, names)}


def fresh_model(run: Path):
    """The run's recipe's split model as built before any LM stage (speech branch copied from
    the trunk, speech embedding and head new), with the run's trained tokenizer and decoder
    (None where the run has not trained one: then nothing is voiced or judged)."""
    from toolkit.persist.components import load_run_component
    from toolkit.speech_lm.bundle import SpeechLM, build_split, build_trunk
    from toolkit.recipe import load_recipe

    recipe = load_recipe(run / "recipe.yaml")
    tokenizer, node = load_run_component(run, "tokenizer")
    if tokenizer is None:
        raise SystemExit(f"{run}: no tokenizer stage (run the recipe with --only corpus --only tokenizer)")
    trunk = build_trunk(recipe["trunk"])
    split = build_split(trunk, recipe["splitter"], tokenizer.codebook_size)
    decoder, decoder_node = load_run_component(run, "decoder")
    nodes = {"tokenizer": node, **({"decoder": decoder_node} if decoder is not None else {})}
    return SpeechLM(split.eval(), trunk.eval(), tokenizer, decoder, nodes, f"{run} (fresh)")


def extra_rows(run: Path, count: int, words: list[str] | None, names: bool = True) -> tuple[Path, list[dict]]:
    """``count`` extra house-voice training utterances for ``run`` (the corpus's names in training
    carriers unless ``names`` is false, then strings of ``words`` where given) and the folder their
    audio paths are relative to (``RUN/probes/tts_extra``)."""
    from toolkit.evaluation.phonemes import corpus_names
    from speaking_data import extra_utterances

    root = run / "probes" / "tts_extra"
    said = corpus_names(run / "corpus") if names else []
    return root, (extra_utterances(root, said, count, words=words) if count else [])


def codes_of(lm, run: Path, groups: dict[Path, list[dict]]) -> dict:
    """Speech codes of every utterance of ``groups`` (root folder -> its rows), cached under the
    run as the LM stages cache theirs (the whole corpus as one group shares their cache)."""
    from toolkit.data.token_cache import build_token_cache

    out = {}
    for root, group in groups.items():
        cache = build_token_cache(lm.tokenizer, group, root, run / "cache" / "speech_codes")
        out.update({u["id"]: torch.as_tensor(cache.get(u["id"]), dtype=torch.long)
                    for u in group if str(u["id"]) in cache})
    return out


def probe_examples(lm, utts: list[dict], codes: dict, by_word: bool,
                   alone: bool = False) -> tuple[list, list, list]:
    """Training-shaped examples of ``utts``: TTS, or word-interleaved TTS (``tts_words``;
    utterances whose words the tokenizer cannot place are left out; one word spans all its
    codes), each also with the same speech under another text: the next utterance's (TTS) or
    its own words in another order (by word: each segment under a wrong word). ``alone`` (by
    word only): each word is its own example (its text, then its codes), with no sentence."""
    model = lm.model
    if not by_word:
        pairs = [(u["text"], codes[u["id"]]) for u in utts]
        others = [(utts[(i + 1) % len(utts)]["text"], c) for i, (_, c) in enumerate(pairs)]
        return utts, tts_examples(model, pairs), tts_examples(model, others)
    from toolkit.speech_lm.sequences import pretraining_example, words_alone

    kept, own, other = [], [], []
    tok, tokens = model.text_tokenizer, model.tokens
    for i, u in enumerate(utts):
        spans = lm.tokenizer.word_spans(codes[u["id"]], u["text"])
        if spans is None and len(u["text"].split()) == 1:  # a word said alone: all its codes
            spans = [(u["text"], 0, len(codes[u["id"]]))]
        if spans is None:
            continue
        kept.append(u)
        for out, chosen in ((own, spans), (other, shuffled_words(spans, i))):
            out += words_alone(tok, tokens, chosen, codes[u["id"]]) if alone else \
                [pretraining_example("tts_words", tok, tokens, codes=codes[u["id"]], text=u["text"], spans=chosen)]
    return kept, own, other


def shuffled_words(spans: list[tuple[str, int, int]], seed: int) -> list[tuple[str, int, int]]:
    """The same code spans under the utterance's words in another order (no word in its own
    place where the words allow)."""
    words = [w for w, _, _ in spans]
    order, rng = list(range(len(words))), random.Random(seed)
    for _ in range(20):
        rng.shuffle(order)
        if all(words[j] != words[i] for i, j in enumerate(order)):
            break
    return [(words[j], a, b) for j, (_, a, b) in zip(order, spans)]


def print_ce(before: dict, after: dict) -> None:
    print(f"{'held-out CE (nats/code)':<26}{'own text':>10}{'other text':>12}{'gap':>8}")
    for label, d in (("before", before), ("after", after)):
        print(f"{label:<26}{d['own_text']:>10.3f}{d['other_text']:>12.3f}{d['gap']:>8.3f}")


def print_reading(read: dict | None, phonemes: dict | None) -> None:
    if phonemes is not None:
        for label, d in (("said", phonemes["said"]), ("own audio", phonemes["own_audio"])):
            print(f"phoneme head on {label:<10}: PER {d['per']:.2f}, names unbroken {d['entity_exact']:.0%}, "
                  f"names closest {d['entity_closest']:.0%} (of {d['names']})")
            for ref, hyp in d["samples"]:
                print(f"  {ref!r} -> {hyp!r}")
    if read is not None:
        print(f"speaking after: WER {read['said']['wer']:.2f}, names {read['said']['entity_rate']:.0%}; "
              f"resynthesis WER {read['resynthesis']['wer']:.2f}, names {read['resynthesis']['entity_rate']:.0%}")
        for s in read["samples"]:
            print(f"  {s['text']!r} -> {s['said']!r}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/moss_full", type=Path)
    parser.add_argument("--stage", default=None,
                        help="LM stage to load (default: the run's export or newest; 'fresh': none, "
                             "the recipe's split model before training, for a run with a tokenizer only)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--n", type=int, default=60, help="held-out utterances to measure")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", type=int, default=0,
                        help="extra training utterances in one house voice (benchmarks/speaking_data.py)")
    parser.add_argument("--vocab", type=int, default=0,
                        help="with --extra: after the named sentences, strings of the trunk's N most "
                             "frequent words instead of grammar sentences")
    parser.add_argument("--no-extra-names", action="store_true",
                        help="with --extra: no named sentences, only the grammar or --vocab strings")
    parser.add_argument("--uncompressed", action="store_true", help="switch off speech_compress / speech_snap")
    parser.add_argument("--by-word", action="store_true",
                        help="word-interleaved TTS (task tts_words): each word's text, then its speech; "
                             "read aloud the same way")
    parser.add_argument("--speech-init", choices=("random", "aligned"), default="random",
                        help="--stage fresh: the speech embedding as the LM stages start it "
                             "(aligned: each code's mean text embedding, stage_args.*.speech_init)")
    parser.add_argument("--head-code-map", action="store_true",
                        help="tie the speech head's rows to the tokenizer's code vectors while the branch "
                             "trains (splitter.params.speech_head_code_map)")
    parser.add_argument("--name-drill", type=int, default=0,
                        help="add every name said alone in the house voice, K times each in the training pool")
    parser.add_argument("--speech-dropout", type=float, default=0.0,
                        help="while training, zero each input speech code's split-point state with probability P")
    parser.add_argument("--word-alone", action="store_true",
                        help="with --by-word: train and read each word as its own example, with no sentence")
    parser.add_argument("--house-voice", action="store_true",
                        help="train on the training sentences re-synthesised in one house voice, not the corpus speakers")
    parser.add_argument("--memorised", type=int, default=0,
                        help="also read N training sentences with a name aloud (phoneme head only)")
    parser.add_argument("--no-read", action="store_true", help="skip reading aloud (text dependence only)")
    args = parser.parse_args()
    if args.word_alone and not args.by_word:
        parser.error("--word-alone needs --by-word (the tokenizer's word spans cut the words)")
    return args


def main() -> None:
    args = arguments()
    from toolkit import load
    from toolkit.evaluation.ladder import ladder_utterances
    from toolkit.io import read_jsonl
    from toolkit.machine import bf16_pays

    torch.manual_seed(args.seed)
    precision = torch.bfloat16 if bf16_pays()[0] else None
    lm = (fresh_model(args.run) if args.stage == "fresh" else load(args.run, args.stage)).eval()
    model, corpus = lm.model, args.run / "corpus"
    if args.uncompressed:
        model.params.speech_compress = model.params.speech_snap = False
    rows = read_jsonl(corpus / "utterances.jsonl")
    if args.vocab:
        from toolkit.data.vocabulary import frequent_words

        words = frequent_words(model.text_tokenizer, args.vocab)
    extra_root, extra = extra_rows(args.run, args.extra, words if args.vocab else None,
                                   names=not args.no_extra_names)
    drill_root, drill = args.run / "probes" / "tts_names", []
    if args.name_drill:
        from toolkit.evaluation.phonemes import corpus_names
        from speaking_data import name_utterances

        drill = name_utterances(drill_root, corpus_names(corpus))
    train = [u for u in rows if u.get("split") == "train" and u.get("text")]
    house_root, house = args.run / "probes" / "tts_house", []
    if args.house_voice:  # the same sentences, all said by one speaker
        from toolkit.data.vocabulary import HOUSE_VOICE, house_utterances

        train = house = house_utterances(house_root, [u["text"] for u in train], "h", HOUSE_VOICE)
    codes = codes_of(lm, args.run, {corpus: rows, **({extra_root: extra} if extra else {}),
                                    **({drill_root: drill} if drill else {}), **({house_root: house} if house else {})})
    train = train + extra
    held = ladder_utterances(corpus, args.split, args.n)
    train, held = [u for u in train if u["id"] in codes], [u for u in held if u["id"] in codes]
    if not held:
        raise SystemExit(f"{corpus}: no '{args.split}' utterances with an entity name")
    if args.speech_init == "aligned":
        if args.stage != "fresh":
            raise SystemExit("--speech-init aligned: only for --stage fresh (a trained stage has its own embedding)")
        from toolkit.speech_lm.speech_init import init_aligned

        init_aligned(model, ((codes[u["id"]], u["text"]) for u in train))
    if args.head_code_map:
        model.params.speech_head_code_map = True
        model.tie_speech_head(lm.tokenizer.code_vectors())
    started = time.time()
    train, train_examples, _ = probe_examples(lm, train, codes, args.by_word, args.word_alone)
    _, own, other = probe_examples(lm, held, codes, args.by_word, args.word_alone)  # all of held is read aloud
    items = split_states(model, train_examples, precision)
    if drill:  # the same states K times: a name alone is drawn K times as often
        _, drill_examples, _ = probe_examples(lm, [u for u in drill if u["id"] in codes], codes, args.by_word,
                                              args.word_alone)
        items += split_states(model, drill_examples, precision) * args.name_drill
    own, other = split_states(model, own, precision), split_states(model, other, precision)
    cached = time.time() - started
    before = text_dependence(model, own, other, precision)
    started = time.time()
    final = (trained_branch(model, items, args.steps, args.lr, precision, args.seed, args.speech_dropout)
             if args.steps else float("nan"))
    seconds = time.time() - started
    after = text_dependence(model, own, other, precision)
    print(f"{len(items)} training items ({len(train)} utterances, {args.extra} extra) cached in {cached:.0f} s; "
          f"{args.steps} steps in {seconds:.0f} s, final training CE {final:.3f}")
    print_ce(before, after)
    record = {"run": str(args.run), "stage": args.stage, "split": args.split, "n": len(held),
              "steps": args.steps, "lr": args.lr, "seed": args.seed, "uncompressed": args.uncompressed,
              "extra": args.extra, "vocab": args.vocab, "extra_names": not args.no_extra_names,
              "by_word": args.by_word, "speech_init": args.speech_init,
              "head_code_map": args.head_code_map, "memorised": args.memorised, "name_drill": args.name_drill,
              "speech_dropout": args.speech_dropout, "word_alone": args.word_alone, "house_voice": args.house_voice,
              "train_utterances": len(train),
              "train_items": len(items),
              "train_ce": final, "before": before, "after": after}
    if not args.no_read:
        from toolkit.evaluation.ladder import encode_utterances, read_aloud

        reading = "alone" if args.word_alone else args.by_word
        said = read_aloud(model, [u["text"] for u in held], by_word=reading)
        own_codes = encode_utterances(lm.tokenizer, held, corpus)
        record["phonemes"] = phonemes = phoneme_reading(lm, held, said, own_codes, corpus)
        read = None
        if lm.decoder is not None:
            from toolkit.evaluation import Judge

            record["speaking"] = read = speaking(lm, Judge(), held, said, own_codes)
        print_reading(read, phonemes)
        if args.memorised:
            seen = [u for u in ladder_utterances(corpus, "train") if u["id"] in codes][:args.memorised]
            said = read_aloud(model, [u["text"] for u in seen], by_word=reading)
            record["memorised_reading"] = memorised = phoneme_reading(lm, seen, said, [codes[u["id"]] for u in seen], corpus)
            print("training sentences read aloud:")
            print_reading(None, memorised)
    out = args.run / "probes" / "speaking.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
