"""Corpus rows + synthetic codes -> stage examples and batches; recipe checks."""

from __future__ import annotations

import pytest
import torch

from toolkit.errors import ToolkitError
from toolkit.speech_lm import data
from toolkit.speech_lm.layout import IGNORE, SPEECH, TEXT, SpecialTokens
from toolkit.stages.shared import check_codebook_size, lm_trainer_kwargs

from speech_lm_helpers import ByteChat, synthetic_codes

TOKENS = SpecialTokens(256, 257, 40, 41, 258, 40)


def test_text_share_of_stage2_targets():
    tok, codes = ByteChat(), synthetic_codes(30)
    utts = [{"id": k, "text": "words here", "split": "train"} for k in codes]
    utts.append({"id": "held", "text": "x", "split": "test"})
    speech = data.pretraining_examples(utts, codes.__getitem__, tok, TOKENS, {"continuation": 1, "tts": 1}, 0)
    assert len(speech) == 30  # the test utterance is left out
    text = data.text_examples([f"sentence {i}" for i in range(7)], tok, TOKENS)
    mixed = data.mix_text(speech, text, 0.4, seed=0)
    only_text = mixed[len(speech):]
    assert not any(bool((e["target_modality"] == SPEECH).any()) for e in only_text)
    count = lambda es: sum(int((e["target_modality"] != IGNORE).sum()) for e in es)  # noqa: E731
    share = count(only_text) / count(mixed)
    assert 0.4 <= share < 0.45


def test_sft_examples_and_batches():
    tok, codes = ByteChat(), synthetic_codes(8)
    ids = list(codes)
    dialogues = [{"id": f"d{i}", "split": "train", "mode": m,
                  "turns": [{"role": "user", "text": "q?", "utt": ids[2 * i]},
                            {"role": "assistant", "text": "a.", "utt": ids[2 * i + 1]}]}
                 for i, m in enumerate(["s2s", "s2t", "t2s", "t2t"])]
    ex = data.sft_examples(dialogues, codes.__getitem__, tok, TOKENS, modes=["s2s", "t2s", "t2t"])
    assert len(ex) == 3
    speech_targets = [int((e["target_modality"] == SPEECH).sum()) for e in ex]
    assert speech_targets == [len(codes[ids[1]]) + 1, len(codes[ids[5]]) + 1, 0]
    loader = data.make_loader(ex, TOKENS, 512, seed=0, pad_text_id=tok.pad_id)
    batches = list(loader)
    got = sum(int((b["target_modality"] != IGNORE).sum()) for b in batches)
    assert got == sum(int((e["target_modality"] != IGNORE).sum()) for e in ex)
    for b in batches:  # padding is never a target and sits after the real tokens
        pad = b["input_ids"][..., 0] == tok.pad_id
        assert bool((b["target_modality"][pad] == IGNORE).all())
    assert batches[0]["input_ids"].dtype == torch.long and TEXT == 0


def test_recipe_checks():
    for key in ("splitter", "decoder"):
        recipe = {key: {"plugin": "x", "params": {"codebook_size": 32}}}
        with pytest.raises(ToolkitError, match=f"recipe error at {key}.params.codebook_size: 32 does "
                                               "not match the speech tokenizer's codebook of 64"):
            check_codebook_size(recipe, key, 64)
        check_codebook_size(recipe, key, 32)
        check_codebook_size({key: {"plugin": "x", "params": {}}}, key, 64)
    assert lm_trainer_kwargs({"strategy": "ddp"})["strategy"] == "ddp_find_unused_parameters_true"
    with pytest.raises(ToolkitError, match="batch_tokens=8 is smaller"):
        data.make_loader(data.text_examples(["a long sentence"], ByteChat(), TOKENS), TOKENS, 8, 0)


def test_tts_words_task_uses_word_spans_or_falls_back_to_tts():
    tok, codes = ByteChat(), synthetic_codes(6)
    utts = [{"id": k, "text": "two words" if i % 2 else "one", "split": "train"} for i, k in enumerate(codes)]

    def spans_of(c, text):  # the first half of the codes says the first word
        return None if len(text.split()) < 2 else [("two", 0, len(c) // 2), ("words", len(c) // 2, len(c))]

    examples = data.pretraining_examples(utts, codes.__getitem__, tok, TOKENS, {"tts_words": 1}, 0,
                                         spans_of=spans_of)
    segments = [int((e["input_ids"][:, 0] == TOKENS.sosp).sum()) for e in examples]
    assert segments == [1, 2] * 3  # one-word texts gave plain TTS
    with pytest.raises(ToolkitError, match="word_spans"):
        data.pretraining_examples(utts, codes.__getitem__, tok, TOKENS, {"tts_words": 1}, 0)
