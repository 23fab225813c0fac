"""The hearing CTC loss: speech inputs that point at their transcript's text embeddings (with
the blank between) score near zero and read back as the transcript; random ones do not; it
trains only the speech side; ASR / TTS examples carry the transcript through the collate."""

from __future__ import annotations

import torch

from toolkit.speech_lm.data import collate
from toolkit.speech_lm.hearing_ctc import greedy_tokens, hearing_ctc_loss, speech_frames
from toolkit.speech_lm.module import OptimConfig, SplitLMModule
from toolkit.speech_lm.sequences import pretraining_example

from speech_lm_helpers import tiny_split

SPOKEN = "Oslo"


def asr_batch(model, codes):
    tok = model.text_tokenizer
    examples = [pretraining_example("asr", tok, model.tokens, codes=codes, text=SPOKEN),
                pretraining_example("continuation", tok, model.tokens, codes=codes)]
    return collate(examples, model.tokens)


def spell_transcript(model, codes) -> None:
    """Speech rows that spell ``SPOKEN``: code ``i`` -> the embedding of its ``i``-th byte,
    ``eosp`` -> the last byte again (CTC collapses the repeat)."""
    ids = model.text_tokenizer.encode(SPOKEN)
    with torch.no_grad():
        for code, token in zip(codes.tolist(), ids):
            model.speech_embed.weight[code] = model.embed_tokens.weight[token]
        model.speech_embed.weight[model.tokens.eosp] = model.embed_tokens.weight[ids[-1]]


def test_inputs_that_spell_the_transcript_score_low_and_read_back():
    _, model = tiny_split()
    codes = torch.tensor([3, 7, 11, 19])
    batch = asr_batch(model, codes)
    assert batch["transcript_lengths"].tolist() == [4, 0]  # continuation has no transcript
    with torch.no_grad():
        random_loss = float(hearing_ctc_loss(model, batch))
        spell_transcript(model, codes)
        spelled_loss = float(hearing_ctc_loss(model, batch))
    assert greedy_tokens(model, codes) == model.text_tokenizer.encode(SPOKEN)
    assert spelled_loss < 0.1 < random_loss / 10, (spelled_loss, random_loss)


def test_only_the_speech_side_gets_gradients():
    _, model = tiny_split()
    module = SplitLMModule(model, OptimConfig(), trainable=("speech",), hearing_ctc=1.0)
    losses = module(asr_batch(model, torch.tensor([3, 7, 11, 19])))
    assert float(losses["ctc_loss"]) > 0
    losses["loss"].backward()
    assert model.speech_embed.weight.grad.abs().sum() > 0
    assert model.embed_tokens.weight.grad is None


def test_speech_frames_pack_each_rows_speech_positions_in_order():
    inputs = torch.arange(2 * 5 * 1, dtype=torch.float).reshape(2, 5, 1)
    is_speech = torch.tensor([[False, True, True, False, False], [True, False, True, True, True]])
    frames, lengths = speech_frames(inputs, is_speech)
    assert lengths.tolist() == [2, 4]
    assert frames[..., 0].tolist() == [[1, 2, 0, 0], [5, 7, 8, 9]]
