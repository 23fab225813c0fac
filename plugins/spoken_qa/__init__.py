"""``spoken_qa``: the default spoken corpora, synthesised offline with espeak-ng.

A knowledge base of facts across domains (question + full-sentence answer), general
sentences, every fact's names in neutral sentences, small talk and chat dialogues in four
modes, split by question into ``train``, ``val``, ``test`` and ``text_only`` (facts seen in
text training only; their names are still heard and spoken in training). The whole corpus is
fixed by ``seed``; audio is 16 kHz mono FLAC (or WAV) under ``audio/``. Files written::

    utterances.jsonl  qa.jsonl  dialogues.jsonl  text.jsonl  corpus.json
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from toolkit.registry import API_VERSION
from plugins.spoken_qa.knowledge import DOMAINS
from plugins.spoken_qa.plan import SPLITS, Plan, build_plan
from toolkit.contracts import SpeechDataset
from toolkit.data.manifest import write_manifest
from toolkit.data.synth import SynthJob, espeak_binary, synthesize_all
from toolkit.errors import RecipeError
from toolkit.io import read_json, write_json
from toolkit.params import to_dict

CORPUS_VERSION = 2
MANIFESTS = ("utterances", "qa", "dialogues", "text")


@dataclass
class SpokenQAParams:
    seed: int = 0
    num_facts: int = 120
    """Facts in total, shared out over ``split_fractions`` (the knowledge base has 472)."""
    split_fractions: dict[str, float] = field(default_factory=lambda: {
        "train": 0.6, "val": 0.1, "test": 0.15, "text_only": 0.15})
    domains: list[str] = field(default_factory=list)
    """Domains to draw facts from (empty: all of geography, literature, science, units,
    words, dates, arithmetic)."""
    num_sentences: int = 100
    sentence_split_fractions: dict[str, float] = field(default_factory=lambda: {
        "train": 0.9, "val": 0.05, "test": 0.05})
    num_dialogues: int = 80
    turn_voices: int = 2
    """How many speakers say each small-talk line."""
    num_speakers: int = 24
    """Training speakers."""
    held_out_speakers: int = 4
    """Speakers of their own for ``val`` and for ``test``/``text_only`` (never heard in training)."""
    entity_voices: int = 3
    """Training utterances per name (every fact's subject and answer, all splits), each in a
    neutral carrier sentence and a training voice."""
    voices: list[str] = field(default_factory=lambda: [
        "en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-scotland"])
    variants: list[str] = field(default_factory=lambda: [
        "", "+f1", "+f2", "+f3", "+f4", "+m1", "+m2", "+m3", "+m4"])
    speed_range: tuple[int, int] = (140, 185)
    pitch_range: tuple[int, int] = (30, 70)
    format: Literal["flac", "wav"] = "flac"
    sample_rate: int = 16000
    workers: int = 0
    """Synthesis threads (0: one per CPU core)."""


class SpokenQA(SpeechDataset):
    """Generate (or reuse) the spoken QA corpus in a folder."""

    Params = SpokenQAParams
    api_version = API_VERSION

    def __init__(self, params: SpokenQAParams) -> None:
        check_params(params)
        self.params = params

    def fingerprint(self) -> str:
        """Hash of everything that decides the corpus contents."""
        blob = json.dumps({"version": CORPUS_VERSION, **content_params(self.params)},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def manifest_paths(self, root: Path) -> dict[str, Path]:
        return {name: Path(root) / f"{name}.jsonl" for name in MANIFESTS}

    def is_complete(self, root: Path) -> bool:
        info = Path(root) / "corpus.json"
        if not info.is_file() or not all(p.is_file() for p in self.manifest_paths(root).values()):
            return False
        return read_json(info).get("fingerprint") == self.fingerprint()

    def prepare(self, root: Path) -> dict[str, Path]:
        """Build the corpus under ``root`` (reusing finished audio) -> manifest name -> path."""
        root = Path(root)
        if self.is_complete(root):
            return self.manifest_paths(root)
        p = self.params
        plan = build_plan(p)
        jobs = [plan_job(plan, row) for row in plan.utterances]
        done = synthesize_all(jobs, root / "audio", p.sample_rate, p.format, p.workers,
                              "synthesising corpus")
        for row, (path, seconds) in zip(plan.utterances, done):
            row["audio_filepath"] = path.relative_to(root).as_posix()
            row["duration"] = round(seconds, 5)
            row["num_samples"] = round(seconds * p.sample_rate)
        paths = self.manifest_paths(root)
        write_manifest(paths["utterances"], plan.utterances)
        write_manifest(paths["qa"], plan.qa)
        write_manifest(paths["dialogues"], plan.dialogues)
        write_manifest(paths["text"], plan.text)
        prune(root / "audio", {path for path, _ in done})
        write_json(root / "corpus.json", summary(self, plan))
        return paths


def content_params(p: SpokenQAParams) -> dict:
    """The parameters that decide the corpus bytes (not how many threads made it)."""
    return {k: v for k, v in to_dict(p).items() if k != "workers"}


def plan_job(plan: Plan, row: dict) -> SynthJob:
    return SynthJob(row["id"], row["text"], plan.voices[row["id"]])


def check_params(p: SpokenQAParams) -> None:
    bad = set(p.split_fractions) - set(SPLITS)
    if bad or not p.split_fractions or min(p.split_fractions.values()) < 0:
        raise RecipeError("data.params.split_fractions", f"keys must be among {', '.join(SPLITS)} "
                                                         "with non-negative values")
    if set(p.sentence_split_fractions) - {"train", "val", "test"}:
        raise RecipeError("data.params.sentence_split_fractions", "keys must be train, val, test")
    unknown = set(p.domains) - set(DOMAINS)
    if unknown:
        raise RecipeError("data.params.domains", f"unknown domain {sorted(unknown)[0]!r}; "
                                                 f"domains: {', '.join(DOMAINS)}")
    if not p.voices or p.num_speakers < 1 or p.held_out_speakers < 1:
        raise RecipeError("data.params.voices", "need at least one voice, one training speaker "
                                                "and one held-out speaker")
    for name, (lo, hi) in (("speed_range", p.speed_range), ("pitch_range", p.pitch_range)):
        if lo > hi:
            raise RecipeError(f"data.params.{name}", f"low end {lo} above high end {hi}")


def prune(folder: Path, keep: set[Path]) -> None:
    """Delete audio files of earlier builds that this corpus no longer references."""
    for path in folder.glob("*.*"):
        if path not in keep and path.suffix in (".flac", ".wav"):
            path.unlink()


def espeak_version() -> str:
    out = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def summary(ds: SpokenQA, plan: Plan) -> dict:
    """``corpus.json``: what was built, from which parameters; no timestamps."""
    counts: dict[str, dict[str, int]] = {}
    for row in plan.utterances:
        counts.setdefault(row["task"], {}).setdefault(row["split"], 0)
        counts[row["task"]][row["split"]] += 1
    hours = sum(r["duration"] for r in plan.utterances) / 3600
    return {"plugin": "spoken_qa", "version": CORPUS_VERSION, "fingerprint": ds.fingerprint(),
            "params": content_params(ds.params), "espeak_ng": espeak_version(),
            "utterances": counts, "hours": round(hours, 4), "qa": len(plan.qa),
            "dialogues": len(plan.dialogues), "text_rows": len(plan.text)}


__all__ = ["SpokenQA", "SpokenQAParams"]
