"""Conversation and pre-training sequences: layout, targets and modality per mode."""

from __future__ import annotations

import pytest
import torch

from toolkit.errors import ToolkitError
from toolkit.speech_lm.layout import IGNORE, SPEECH, TEXT, SpecialTokens, live_token
from toolkit.speech_lm.sequences import (MODES, Turn, build_conversation, dialogue_turns,
                                         pretraining_example)

from speech_lm_helpers import ByteChat

TOKENS = SpecialTokens(sosp=256, modality_pad=257, eosp=40, speech_pad=41, text_vocab_size=258,
                       speech_vocab_size=40)
CODES = {"q": torch.tensor([1, 2, 3, 4]), "a": torch.tensor([5, 6, 7])}
DIALOGUE = [{"role": "user", "text": "hi?", "utt": "q"}, {"role": "assistant", "text": "ok", "utt": "a"}]


def render(example) -> str:
    """The ChatML text the grid stands for, speech written as [codes]."""
    tok = ByteChat()
    out, ids = [], example["input_ids"]
    for text_id, speech_id in ids.tolist():
        if text_id == TOKENS.sosp:
            out.append("<sosp>")
        elif text_id == TOKENS.modality_pad:
            out.append("<eosp>" if speech_id == TOKENS.eosp else f"[{speech_id}]")
        else:
            out.append(tok.decode([text_id]))
    return "".join(out)


@pytest.mark.parametrize("mode", MODES)
def test_four_modes_layout_and_targets(mode):
    turns = dialogue_turns(DIALOGUE, mode, CODES.__getitem__)
    ex = build_conversation(turns, ByteChat(), TOKENS)
    user = "<sosp>[1][2][3][4]<eosp>" if mode[0] == "s" else "hi?"
    answer = "<sosp>[5][6][7]<eosp>" if mode[2] == "s" else "ok"
    assert render(ex) == (f"<|im_start|>user\n{user}<|im_end|>\n"
                          f"<|im_start|>assistant\n{answer}<|im_end|>\n")
    target = ex["target_modality"]
    # Scored: the answer content (not its sosp) and the footer "<|im_end|>\n".
    n_speech = int((target == SPEECH).sum())
    n_text = int((target == TEXT).sum())
    assert n_speech == (4 if mode[2] == "s" else 0)  # 3 codes + eosp
    assert n_text == (2 if mode[2] == "s" else 4)   # footer (+ "ok")
    # Labels are the next live token, in the vocabulary of their modality.
    nxt = live_token(ex["input_ids"], TOKENS)[1:]
    scored = target[:-1] != IGNORE
    assert torch.equal(ex["labels"][:-1][scored], nxt[scored])
    if mode[2] == "s":  # the first scored speech target is the first code, right after sosp
        first = int((target == SPEECH).nonzero()[0])
        assert ex["input_ids"][first, 0] == TOKENS.sosp and ex["labels"][first] == 5


def test_generation_prompt_ends_in_sosp_for_speech_output():
    turns = [Turn("user", text="hi?")]
    speech = build_conversation(turns, ByteChat(), TOKENS, generation_prompt="speech")
    text = build_conversation(turns, ByteChat(), TOKENS, generation_prompt="text")
    assert render(text).endswith("<|im_start|>assistant\n")
    assert render(speech) == render(text) + "<sosp>"
    assert bool((speech["target_modality"] == IGNORE).all())


def test_pretraining_text_targets_policy():
    tok = ByteChat()
    codes = torch.tensor([3, 4])
    tts_all = pretraining_example("tts", tok, TOKENS, codes=codes, text="ab")
    tts_stage1 = pretraining_example("tts", tok, TOKENS, codes=codes, text="ab", text_targets="after_speech")
    asr_stage1 = pretraining_example("asr", tok, TOKENS, codes=codes, text="ab", text_targets="after_speech")
    # "ab" + sosp + 2 codes + eosp: text targets b, sosp; speech targets 3, 4, eosp
    assert int((tts_all["target_modality"] == TEXT).sum()) == 2
    assert int((tts_stage1["target_modality"] == TEXT).sum()) == 0
    assert int((tts_stage1["target_modality"] == SPEECH).sum()) == 3
    # sosp 3 4 eosp "ab" eos: speech targets 3 4 eosp, text targets after speech a b eos
    assert int((asr_stage1["target_modality"] == TEXT).sum()) == 3
    assert render(asr_stage1) == "<sosp>[3][4]<eosp>ab<|im_end|>"


def test_tts_words_puts_each_word_before_its_speech():
    tok, codes = ByteChat(), torch.tensor([3, 4, 5, 6, 7])
    spans = [("ab", 0, 2), ("cd.", 2, 5)]
    ex = pretraining_example("tts_words", tok, TOKENS, codes=codes, text="ab cd.", spans=spans)
    assert render(ex) == "ab<sosp>[3][4]<eosp> cd.<sosp>[5][6][7]<eosp>"
    speech = ex["target_modality"] == SPEECH
    assert ex["labels"][speech].tolist() == [3, 4, TOKENS.eosp, 5, 6, 7, TOKENS.eosp]  # every code once
    stage1 = pretraining_example("tts_words", tok, TOKENS, codes=codes, text="ab cd.", spans=spans,
                                 text_targets="after_speech")
    # after the first word's speech, the next word and its sosp are text targets
    assert tok.decode(stage1["labels"][stage1["target_modality"] == TEXT].tolist()[:4]) == " cd."
    with pytest.raises(ToolkitError, match="word spans"):
        pretraining_example("tts_words", tok, TOKENS, codes=codes, text="ab cd.")
