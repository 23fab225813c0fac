"""The spoken_qa corpus: format, split invariants, byte-for-byte reproducibility, reuse."""

import hashlib
import json
from pathlib import Path

import pytest
import soundfile as sf
import yaml

import toolkit
from toolkit.errors import ToolkitError

SMALL = {"num_facts": 32, "num_sentences": 8, "num_dialogues": 16, "turn_voices": 1,
         "num_speakers": 6, "seed": 7}
TINY = {"num_facts": 8, "num_sentences": 2, "num_dialogues": 4, "turn_voices": 0,
        "num_speakers": 2}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    toolkit.build("dataset", "spoken_qa", **SMALL).prepare(root)
    return root


def test_corpus_format(built: Path) -> None:
    utts = {u["id"]: u for u in rows(built / "utterances.jsonl")}
    assert {u["task"] for u in utts.values()} == {"question", "answer", "sentence", "turn", "entity"}
    for u in list(utts.values())[::7]:
        data, rate = sf.read(built / u["audio_filepath"])
        assert rate == 16000 and data.ndim == 1 and len(data) == u["num_samples"]
        assert abs(len(data) / rate - u["duration"]) < 1e-4 and u["duration"] > 0.3
        assert u["speaker"].count("/") == 2 and u["audio_filepath"].endswith(".flac")
    for item in rows(built / "qa.jsonl"):
        assert item["key"] in item["answer"].lower()
        assert utts[item["question_utt"]]["text"] == item["question"]
        if item["split"] == "text_only":
            assert item["answer_utt"] is None
        else:
            assert utts[item["answer_utt"]]["text"] == item["answer"]
    for d in rows(built / "dialogues.jsonl"):
        user = [t for t in d["turns"] if t["role"] == "user"]
        bot = [t for t in d["turns"] if t["role"] == "assistant"]
        assert d["turns"][0]["role"] == "system" and len(user) == len(bot) >= 1
        assert all((t["utt"] is not None) == (d["mode"][0] == "s") for t in user)
        assert all((t["utt"] is not None) == (d["mode"][2] == "s") for t in bot)
        assert all(utts[t["utt"]]["text"] == t["text"] for t in user + bot if t["utt"])
    assert {d["mode"] for d in rows(built / "dialogues.jsonl")} == {"s2s", "s2t", "t2s", "t2t"}


def test_splits_never_leak(built: Path) -> None:
    qa = rows(built / "qa.jsonl")
    assert {q["split"] for q in qa} == {"train", "val", "test", "text_only"}
    assert len({q["question"] for q in qa}) == len(qa)
    held = {q["id"]: q for q in qa if q["split"] == "test"}
    text_only = {q["id"]: q for q in qa if q["split"] == "text_only"}
    training_text = [r["text"] for r in rows(built / "text.jsonl") if r["split"] != "test"]
    training_text += [t["text"] for d in rows(built / "dialogues.jsonl") if d["split"] == "train"
                      for t in d["turns"]]
    training_speech = [u["text"] for u in rows(built / "utterances.jsonl")
                       if u["split"] in ("train", "val")]
    for q in held.values():
        assert not any(q["question"] in t or q["answer"] in t for t in training_text)
        assert q["question"] not in training_speech and q["answer"] not in training_speech
    texts = [r["text"] for r in rows(built / "text.jsonl") if r["split"] == "text_only"]
    for q in text_only.values():
        assert q["answer"] in texts  # seen in text training ...
        assert q["answer"] not in training_speech  # ... never heard
    spoken_answers = [u for u in rows(built / "utterances.jsonl") if u["task"] == "answer"]
    assert not any(u["qa"] in text_only for u in spoken_answers)


def test_every_name_is_heard_in_training_and_no_held_out_fact_is(built: Path) -> None:
    """Subjects and answers of every split are spoken in training (several voices, neutral
    carriers); held-out entity utterances use voices and carriers training never used."""
    from plugins.spoken_qa.texts import HELD_OUT_CARRIERS, TRAIN_CARRIERS

    utts = rows(built / "utterances.jsonl")
    qa = rows(built / "qa.jsonl")
    entity = [u for u in utts if u["task"] == "entity"]
    trained = {}
    for u in entity:
        if u["split"] == "train":
            trained.setdefault(u["entity"], set()).add(u["speaker"])
    for q in qa:
        for name in (q["subject"], q["entity"]):
            if name:
                assert len(trained.get(name, ())) >= 2, (q["split"], name)
    voices = {s: {u["speaker"] for u in utts if u["split"] == s} for s in ("train", "val", "test")}
    assert not voices["train"] & voices["test"] and not voices["train"] & voices["val"]
    assert not voices["val"] & voices["test"]
    assert {u["speaker"] for u in utts if u["split"] == "text_only"} <= voices["test"]
    carriers = {"train": TRAIN_CARRIERS, "test": HELD_OUT_CARRIERS, "val": HELD_OUT_CARRIERS}
    for u in entity:
        assert u["text"] in {c.format(u["entity"]) for c in carriers[u["split"]]}
    held = [q for q in qa if q["split"] in ("test", "text_only")]
    assert {u["entity"] for u in entity if u["split"] == "test"} == \
        {n for q in held for n in (q["subject"], q["entity"]) if n}
    for q in held:  # a carrier names one thing: no spoken sentence states a held-out fact
        both = [u for u in utts if q["subject"] and q["subject"] in u["text"] and q["entity"] in u["text"]]
        assert all(u["qa"] == q["id"] for u in both if "qa" in u) and not [u for u in both if "qa" not in u]


def test_reproducible_byte_for_byte_and_reused(built: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    toolkit.build("dataset", "spoken_qa", **SMALL, workers=1).prepare(other)
    assert tree_digest(other) == tree_digest(built)
    stamps = {p: p.stat().st_mtime_ns for p in other.rglob("*.flac")}
    (other / "corpus.json").unlink()  # forces a rebuild: every audio file is reused
    toolkit.build("dataset", "spoken_qa", **SMALL).prepare(other)
    assert {p: p.stat().st_mtime_ns for p in other.rglob("*.flac")} == stamps
    changed = toolkit.build("dataset", "spoken_qa", **TINY, seed=8)
    changed.prepare(other)  # a new seed: new corpus, stale audio removed
    names = {u["audio_filepath"] for u in rows(other / "utterances.jsonl")}
    assert {p.relative_to(other).as_posix() for p in other.rglob("*.flac")} == names


def test_missing_espeak_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolkitError, match="^espeak-ng not found; install it with apt-get "
                                           "install espeak-ng$"):
        toolkit.build("dataset", "spoken_qa", **SMALL).prepare(tmp_path / "c")


def test_bad_params_name_the_key() -> None:
    with pytest.raises(ToolkitError, match="domains"):
        toolkit.build("dataset", "spoken_qa", domains=["astrology"])
    with pytest.raises(ToolkitError, match="num_facts=9999"):
        toolkit.build("dataset", "spoken_qa", num_facts=9999).prepare(Path("/nonexistent"))


def test_corpus_stage_in_a_recipe(tmp_path: Path) -> None:
    from toolkit.runner import run_recipe

    recipe = {"name": "corpus_only", "out": str(tmp_path / "runs"), "seed": 1,
              "data": {"plugin": "spoken_qa", "params": {**TINY, "num_facts": 16}},
              "stages": ["corpus"]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_recipe(path)
    out = next((tmp_path / "runs").rglob("corpus/manifests.json"))
    manifests = json.loads(out.read_text())
    assert set(manifests) == {"utterances", "qa", "dialogues", "text"}
    assert len(rows(out.parent / manifests["qa"])) == 16
