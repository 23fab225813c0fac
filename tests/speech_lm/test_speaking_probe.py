"""The speaking warm-up (toolkit.speech_lm.speaking_warmup, also run by the speaking probe in
benchmarks/speaking_probe.py) trains the speech branch on split-point states computed once; its
loss must be the model's own speech loss on the same examples, with and without speech
compression (hidden frames, shifted positions) and across right padding, and it must train the
speech branch and nothing else."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from toolkit.speech_lm.loss import split_lm_losses
from toolkit.speech_lm.speaking_warmup import branch_loss, split_states

from speech_lm_helpers import N_CODES, tiny_split
from test_speech_compress import spelling_split

PROBE = Path(__file__).parents[2] / "benchmarks" / "speaking_probe.py"


def probe_module():
    spec = importlib.util.spec_from_file_location("speaking_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_for(compress: bool):
    if compress:
        return spelling_split(compress=True, snap=True)
    return tiny_split()[1]


@pytest.mark.parametrize("compress", [False, True])
def test_cached_branch_loss_is_the_models_speech_loss(compress):
    probe, model = probe_module(), model_for(compress)
    gen = torch.Generator().manual_seed(0)
    pairs = [("hi", torch.tensor([3, 3, 6, 4, 4, 5, 6])),
             ("a longer line", torch.randint(0, N_CODES, (11,), generator=gen)),
             ("ok", torch.tensor([5, 6, 3]))]
    examples = probe.tts_examples(model, pairs)
    with torch.no_grad():
        items = split_states(model, examples, precision=None, batch_size=2)
        own = [split_lm_losses(model, {k: e[k][None] for k in ("input_ids", "labels", "target_modality")})
               for e in examples]
        for item, losses in zip(items, own):
            torch.testing.assert_close(branch_loss(model, [item], None), losses["speech_loss"],
                                       rtol=1e-5, atol=1e-5)
        counts = torch.stack([losses["speech_tokens"] for losses in own]).float()
        pooled = (torch.stack([losses["speech_loss"] for losses in own]) * counts).sum() / counts.sum()
        torch.testing.assert_close(branch_loss(model, items, None), pooled, rtol=1e-5, atol=1e-5)


def test_length_groups_cover_every_item_once_with_bounded_padding():
    from toolkit.speech_lm.speaking_warmup import length_groups

    lengths = [9, 4, 92, 5, 8, 17, 4, 40, 10]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        sizes = [lengths[i] for i in group]
        assert sizes == sorted(sizes) and max(sizes) <= 2 * min(sizes)
    assert sum(len(g) * max(lengths[i] for i in g) for g in groups) < len(lengths) * max(lengths) / 3


def test_train_branch_fits_the_branch_only():
    from toolkit.speech_lm.speaking_warmup import mean_branch_loss, train_branch

    probe, model = probe_module(), tiny_split()[1]
    gen = torch.Generator().manual_seed(1)
    pairs = [(text, torch.randint(0, N_CODES, (9,), generator=gen)) for text in ("one", "two", "three", "four")]
    with torch.no_grad():
        items = split_states(model, probe.tts_examples(model, pairs), precision=None)
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("branches.speech.")}
    start = mean_branch_loss(model, items, None)
    final = train_branch(model, items, steps=60, lr=3e-3, precision=None, seed=0)
    assert final < 0.5 * start and mean_branch_loss(model, items, None) < 0.5 * start
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_extra_speaking_data_never_uses_held_out_carriers():
    """The extra text-to-speech sentences say every name in training carriers only (the probe's
    held-out sentences use the held-out carriers), then new grammar sentences; a fixed seed
    gives the same list."""
    from plugins.spoken_qa.texts import HELD_OUT_CARRIERS, TRAIN_CARRIERS

    spec = importlib.util.spec_from_file_location("speaking_data", PROBE.with_name("speaking_data.py"))
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    names = ["Ankara", "Peru", "forty two"]
    texts = data.extra_texts(names, 40)
    assert len(texts) == len(set(texts)) == 40 and texts == data.extra_texts(names, 40)
    named = {c.format(n) for n in names for c in TRAIN_CARRIERS}
    assert named <= set(texts)
    held = [c.split("{}") for c in HELD_OUT_CARRIERS]
    assert not any(t.startswith(a) and t.endswith(b) for t in texts for a, b in held)
    assert all(t in named for t in data.extra_texts(names, 10))


def test_vocabulary_strings_follow_the_named_sentences_unless_names_are_off():
    """``--vocab`` (with ``--no-extra-names``): after the named sentences, or alone, strings of
    the given words only; a fixed seed gives the same list."""
    spec = importlib.util.spec_from_file_location("speaking_data", PROBE.with_name("speaking_data.py"))
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    words = ["cat", "sat", "mat", "dog", "hand", "over"]
    strings = data.extra_texts([], 5, words=words)
    assert strings == data.extra_texts([], 5, words=words) and len(strings) == 5
    assert all(w.strip(".").lower() in words for s in strings for w in s.split())
    mixed = data.extra_texts(["Peru"], 12, words=words)
    assert mixed[:8] != mixed[8:] and all("Peru" in t for t in mixed[:8])
    assert not any("Peru" in t for t in mixed[8:])


def test_name_drill_says_each_name_alone_and_reuses_its_audio(tmp_path):
    """``--name-drill``: one house-voice utterance per name, its text the name alone; ids never
    collide with the ``--extra`` sentences' ids, and a second call reuses the audio files."""
    spec = importlib.util.spec_from_file_location("speaking_data", PROBE.with_name("speaking_data.py"))
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    rows = data.name_utterances(tmp_path, ["Ankara", "Addis Ababa"])
    assert [r["text"] for r in rows] == ["Ankara.", "Addis Ababa."]
    assert all(r["id"].startswith("n") and r["split"] == "train" for r in rows)
    assert rows[1]["duration"] > rows[0]["duration"] > 0.2
    stamps = [(tmp_path / r["audio_filepath"]).stat().st_mtime_ns for r in rows]
    assert data.name_utterances(tmp_path, ["Ankara", "Addis Ababa"]) == rows
    assert [(tmp_path / r["audio_filepath"]).stat().st_mtime_ns for r in rows] == stamps
    extra = data.extra_utterances(tmp_path, ["Ankara"], 1)
    assert not {r["id"] for r in extra} & {r["id"] for r in rows}


def test_by_word_examples_keep_a_word_said_alone_and_drop_unplaced_sentences():
    """A name said alone spans all its codes (the aligner only places words of sentences); a
    sentence the aligner cannot place is left out."""
    from toolkit.speech_lm.sequences import pretraining_example

    probe, model = probe_module(), tiny_split()[1]
    codes = {"n0": torch.tensor([3, 4, 5, 6]), "s0": torch.tensor([3, 5, 6])}
    lm = SimpleNamespace(model=model, tokenizer=SimpleNamespace(word_spans=lambda c, t: None))
    utts = [{"id": "n0", "text": "Abuja"}, {"id": "s0", "text": "she said"}]
    kept, own, _ = probe.probe_examples(lm, utts, codes, by_word=True)
    assert [u["id"] for u in kept] == ["n0"]
    whole = pretraining_example("tts_words", model.text_tokenizer, model.tokens, codes=codes["n0"],
                                text="Abuja", spans=[("Abuja", 0, 4)])
    assert torch.equal(own[0]["input_ids"], whole["input_ids"])
    assert int((own[0]["target_modality"] == 1).sum()) >= 4  # every code is a speech target


def test_speech_input_dropout_zeroes_only_input_codes():
    """Only positions whose input is a speech code (they predict speech and follow one that
    did) may be zeroed; text and the position that starts the speech never are."""
    from toolkit.speech_lm.speaking_warmup import dropped_speech_inputs

    labels = torch.tensor([-100, -100, 4, 5, 6, 7, -100, 3, 2])  # text, text, sosp->c, c, c, c->eosp, text, ...
    hidden = torch.ones(len(labels), 3)
    item = (hidden, torch.arange(9), torch.ones(9, dtype=torch.bool), labels)
    out = dropped_speech_inputs(item, 1.0, torch.Generator().manual_seed(0))[0]
    assert out[:, 0].tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 0]
    assert torch.equal(dropped_speech_inputs(item, 0.0, torch.Generator())[0], hidden)
    kept = dropped_speech_inputs(item, 0.5, torch.Generator().manual_seed(1))[0]
    assert set(kept[:, 0].tolist()) <= {0.0, 1.0} and kept[[0, 1, 2, 6, 7], 0].eq(1).all()


def test_words_alone_are_trained_and_read_without_their_sentence():
    """``--word-alone``: each word of a placed sentence becomes its own example (its text, then
    the codes of its span; a word said in no code is dropped), its wrong-text twin puts the
    same codes under another word."""
    from toolkit.speech_lm.sequences import pretraining_example

    probe, model = probe_module(), tiny_split()[1]
    codes = {"s0": torch.tensor([3, 4, 5, 6, 7])}
    spans = [("she", 0, 2), ("said", 2, 2), ("Abuja", 2, 5)]
    lm = SimpleNamespace(model=model, tokenizer=SimpleNamespace(word_spans=lambda c, t: spans))
    kept, own, other = probe.probe_examples(lm, [{"id": "s0", "text": "she said Abuja"}], codes,
                                            by_word=True, alone=True)
    assert len(kept) == 1 and len(own) == len(other) == 2
    for example, (word, a, b) in zip(own, (spans[0], spans[2])):
        alone = pretraining_example("tts_words", model.text_tokenizer, model.tokens, codes=codes["s0"][a:b],
                                    text=word, spans=[(word, 0, b - a)])
        assert torch.equal(example["input_ids"], alone["input_ids"])
    assert not torch.equal(other[0]["input_ids"], own[0]["input_ids"])
    spoken = [e["labels"][e["target_modality"] == 1] for e in (other[0], own[0])]
    assert torch.equal(*spoken)


def test_speaking_warmup_alone_reads_each_placed_word_alone_and_unplaced_sentences_whole():
    """``speaking_warmup_alone``: an utterance whose words the tokenizer places gives one
    example per word said in some code; one it cannot place stays a whole-text TTS example."""
    from toolkit.speech_lm.sequences import pretraining_example
    from toolkit.stages.speaking import reading_examples

    model = tiny_split()[1]
    codes = {"a": [3, 4, 5, 6], "b": [5, 6]}
    spans = {"she said it": [("she", 0, 1), ("said", 1, 1), ("it", 1, 4)]}
    train = [{"id": "a", "text": "she said it"}, {"id": "b", "text": "ok"}]
    cache = SimpleNamespace(get=codes.__getitem__)
    out, by_word = reading_examples(model, train, cache, lambda c, t: spans.get(t), alone=True)
    tok, tokens = model.text_tokenizer, model.tokens
    expected = [pretraining_example("tts_words", tok, tokens, codes=torch.tensor([3]), text="she", spans=[("she", 0, 1)]),
                pretraining_example("tts_words", tok, tokens, codes=torch.tensor([4, 5, 6]), text="it",
                                    spans=[("it", 0, 3)]),
                pretraining_example("tts", tok, tokens, codes=torch.tensor([5, 6]), text="ok")]
    assert by_word == 1 and len(out) == 3
    assert all(torch.equal(o["input_ids"], e["input_ids"]) for o, e in zip(out, expected))
    whole, _ = reading_examples(model, train, cache, lambda c, t: spans.get(t))
    assert len(whole) == 2 and len(whole[0]["input_ids"]) > len(out[0]["input_ids"]) + len(out[1]["input_ids"])
