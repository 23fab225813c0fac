"""The corpus plan: every utterance, QA item, dialogue and text row, decided by the seed
before any audio exists (so the plan alone fixes the corpus, byte for byte)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from plugins.spoken_qa.knowledge import Fact, all_facts
from plugins.spoken_qa.texts import (CLOSINGS, GREETINGS, HELD_OUT_CARRIERS, SYSTEM_PROMPTS,
                                     TRAIN_CARRIERS, sentences)
from toolkit.data.synth import Voice
from toolkit.errors import ToolkitError
from toolkit.speech_lm.sequences import MODES

SPLITS = ("train", "val", "test", "text_only")


@dataclass
class Plan:
    utterances: list[dict[str, Any]] = field(default_factory=list)
    """Rows of ``utterances.jsonl`` without ``audio_filepath``/``duration`` yet."""
    voices: dict[str, Voice] = field(default_factory=dict)
    """Utterance id -> who speaks it."""
    qa: list[dict[str, Any]] = field(default_factory=list)
    dialogues: list[dict[str, Any]] = field(default_factory=list)
    text: list[dict[str, Any]] = field(default_factory=list)

    def add_utt(self, uid: str, text: str, split: str, task: str, voice: Voice,
                **extra: Any) -> str:
        self.utterances.append({"id": uid, "text": text, "speaker": voice.name, "split": split,
                                "task": task, **extra})
        self.voices[uid] = voice
        return uid


def speakers(rng: random.Random, p: Any) -> dict[str, list[Voice]]:
    """Split -> its speakers: ``p.num_speakers`` distinct (voice+variant, speed, pitch)
    combinations for ``train``, and ``p.held_out_speakers`` others each for ``val`` and
    ``test`` (``text_only`` questions use the test speakers), so held-out speech is also
    spoken by voices training never heard."""
    wanted = {"train": p.num_speakers, "val": p.held_out_speakers, "test": p.held_out_speakers}
    total = sum(wanted.values())
    pool: dict[str, Voice] = {}
    tries = 0
    while len(pool) < total and tries < 100 * total:
        tries += 1
        v = Voice(rng.choice(p.voices) + rng.choice(p.variants),
                  rng.randint(*p.speed_range), rng.randint(*p.pitch_range))
        pool.setdefault(v.name, v)
    voices = list(pool.values())
    if len(voices) < total:
        raise ToolkitError(f"spoken_qa: only {len(voices)} distinct speakers for the {total} asked "
                           "(num_speakers + 2 * held_out_speakers); widen voices or the ranges")
    out, start = {}, 0
    for split, n in wanted.items():
        out[split], start = voices[start:start + n], start + n
    out["text_only"] = out["test"]
    return out


def allocate(n: int, fractions: dict[str, float]) -> list[str]:
    """``n`` split labels in proportion to ``fractions`` (largest remainder, fixed order)."""
    total = sum(fractions.values())
    exact = {s: n * f / total for s, f in fractions.items()}
    counts = {s: int(v) for s, v in exact.items()}
    for s in sorted(exact, key=lambda s: (counts[s] - exact[s], SPLITS.index(s)))[:n - sum(counts.values())]:
        counts[s] += 1
    return [s for s in SPLITS if s in counts for _ in range(counts[s])]


def choose_facts(rng: random.Random, p: Any) -> list[tuple[Fact, str]]:
    """``p.num_facts`` facts, domains taking turns, each domain split by ``p.split_fractions``."""
    facts = all_facts(list(p.domains) if p.domains else None)
    if p.num_facts > len(facts):
        raise ToolkitError(f"spoken_qa: num_facts={p.num_facts} but the knowledge base has only "
                           f"{len(facts)} facts for the chosen domains")
    by_domain: dict[str, list[Fact]] = {}
    for f in facts:
        by_domain.setdefault(f.domain, []).append(f)
    for group in by_domain.values():
        rng.shuffle(group)
    chosen: dict[str, list[Fact]] = {d: [] for d in by_domain}
    while sum(map(len, chosen.values())) < p.num_facts:
        for d, group in by_domain.items():
            if group and sum(map(len, chosen.values())) < p.num_facts:
                chosen[d].append(group.pop())
    ordered = [f for group in chosen.values() for f in group]
    return sorted(zip(ordered, spread(allocate(len(ordered), p.split_fractions))),
                  key=lambda fs: SPLITS.index(fs[1]))


def spread(labels: list[str]) -> list[str]:
    """The same labels reordered so every stretch of the list holds each in proportion."""
    target = {s: labels.count(s) for s in dict.fromkeys(labels)}
    given = dict.fromkeys(target, 0)
    out = []
    for k in range(len(labels)):
        s = max(target, key=lambda s: (target[s] * (k + 1) / len(labels) - given[s]))
        given[s] += 1
        out.append(s)
    return out


def build_plan(p: Any) -> Plan:
    """The whole corpus from Params ``p`` (see :class:`plugins.spoken_qa.SpokenQA.Params`)."""
    rng = random.Random(p.seed)
    pools = speakers(rng, p)
    plan = Plan()
    facts = choose_facts(rng, p)
    for i, (fact, split) in enumerate(facts):
        qid = f"qa{i:05d}"
        q_utt = plan.add_utt(f"{qid}-q", fact.question, split, "question",
                             rng.choice(pools[split]), qa=qid, domain=fact.domain)
        a_utt = None
        if split != "text_only":
            a_utt = plan.add_utt(f"{qid}-a", fact.answer, split, "answer",
                                 rng.choice(pools[split]), qa=qid, domain=fact.domain)
        plan.qa.append({"id": qid, "split": split, "domain": fact.domain,
                        "question": fact.question, "answer": fact.answer, "key": fact.key,
                        "aliases": list(fact.aliases), "subject": fact.subject,
                        "entity": fact.entity or fact.key, "question_utt": q_utt,
                        "answer_utt": a_utt})
    entity_utterances(plan, rng, facts, pools, p.entity_voices)
    sentence_splits = allocate(p.num_sentences, dict(p.sentence_split_fractions))
    rng.shuffle(sentence_splits)
    for i, (text, split) in enumerate(zip(sentences(rng, p.num_sentences), sentence_splits)):
        plan.add_utt(f"sent{i:05d}", text, split, "sentence", rng.choice(pools[split]))
    turns = small_talk(plan, rng, pools["train"], p.turn_voices)
    plan.dialogues = dialogues(plan.qa, turns, rng, p.num_dialogues)
    plan.text = text_rows(plan)
    return plan


def entity_utterances(plan: Plan, rng: random.Random, facts: list[tuple[Fact, str]],
                      pools: dict[str, list[Voice]], per_name: int) -> None:
    """Speak every name of every fact (subjects and answers, all splits) in neutral carrier
    sentences that state no fact: ``per_name`` times in training (distinct carriers and
    training voices), and once more for each held-out split whose facts use it (a carrier
    training never used, that split's own voices), for the hearing and speaking measures."""
    names: dict[str, set[str]] = {}
    for fact, split in facts:
        for name in fact.names:
            names.setdefault(name, set()).add(split)
    for i, name in enumerate(sorted(names)):
        carriers = rng.sample(TRAIN_CARRIERS, min(per_name, len(TRAIN_CARRIERS)))
        voices = rng.sample(pools["train"], min(len(carriers), len(pools["train"])))
        for j, carrier in enumerate(carriers):
            plan.add_utt(f"ent{i:04d}-{j}", carrier.format(name), "train", "entity",
                         voices[j % len(voices)], entity=name)
        for split in ("val", "test"):
            if split in names[name] or (split == "test" and "text_only" in names[name]):
                plan.add_utt(f"ent{i:04d}-{split}", rng.choice(HELD_OUT_CARRIERS).format(name),
                             split, "entity", rng.choice(pools[split]), entity=name)


def small_talk(plan: Plan, rng: random.Random, voices: list[Voice],
               per_line: int) -> dict[str, list[str]]:
    """Speak every greeting/closing line ``per_line`` times -> line text -> utterance ids."""
    ids: dict[str, list[str]] = {}
    lines = [line for pair in GREETINGS + CLOSINGS for line in pair]
    for i, line in enumerate(lines):
        for j in range(per_line):
            uid = plan.add_utt(f"turn{i:03d}-{j}", line, "train", "turn", rng.choice(voices))
            ids.setdefault(line, []).append(uid)
    return ids


def dialogues(qa: list[dict], turns: dict[str, list[str]], rng: random.Random,
              count: int) -> list[dict[str, Any]]:
    """``count`` chat dialogues, modes in turn; each uses facts of one split only."""
    pools = {s: [item for item in qa if item["split"] == s] for s in ("train", "val", "test")}
    weights = [len(pools[s]) for s in pools]
    if count and not sum(weights):
        raise ToolkitError("spoken_qa: num_dialogues > 0 needs facts in train, val or test")
    out = []
    for i in range(count):
        split = rng.choices(list(pools), weights=weights)[0]
        mode = MODES[i % len(MODES)]
        pairs: list[tuple[str, str, str | None, str | None]] = []
        if turns and rng.random() < 0.5:
            u, a = rng.choice(GREETINGS)
            pairs.append((u, a, rng.choice(turns[u]), rng.choice(turns[a])))
        for item in rng.sample(pools[split], min(len(pools[split]), rng.randint(1, 2))):
            pairs.append((item["question"], item["answer"], item["question_utt"],
                          item["answer_utt"]))
        if turns and rng.random() < 0.3:
            u, a = rng.choice(CLOSINGS)
            pairs.append((u, a, rng.choice(turns[u]), rng.choice(turns[a])))
        chat = [{"role": "system", "text": SYSTEM_PROMPTS[mode], "utt": None}]
        for u, a, u_utt, a_utt in pairs:
            chat.append({"role": "user", "text": u, "utt": u_utt if mode[0] == "s" else None})
            chat.append({"role": "assistant", "text": a,
                         "utt": a_utt if mode[2] == "s" else None})
        out.append({"id": f"dlg{i:05d}", "split": split, "mode": mode, "turns": chat})
    return out


def text_rows(plan: Plan) -> list[dict[str, Any]]:
    """Text training rows: train and text_only facts (statement + QA) and train sentences."""
    rows = []
    for item in plan.qa:
        if item["split"] not in ("train", "text_only"):
            continue
        base = {"split": item["split"], "qa": item["id"], "domain": item["domain"]}
        rows.append({"id": f"{item['id']}-statement", "text": item["answer"],
                     "kind": "statement", **base})
        rows.append({"id": f"{item['id']}-qa", "kind": "qa",
                     "text": f"Question: {item['question']}\nAnswer: {item['answer']}", **base})
    rows += [{"id": f"{u['id']}-text", "split": "train", "text": u["text"], "kind": "sentence"}
             for u in plan.utterances if u["task"] == "sentence" and u["split"] == "train"]
    return rows
