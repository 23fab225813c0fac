"""The hearing CTC loss: speech inputs that point at their transcript's text embeddings (with
the blank between) score near zero and read back as the transcript; random ones do not; it
trains only the speech side; ASR / TTS examples carry the transcript through the collate."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toolkit.speech_lm.data import collate
from toolkit.speech_lm.hearing_ctc import frame_log_probs, greedy_tokens, hearing_ctc_loss, speech_log_probs
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


def test_packed_log_probs_give_the_padded_batch_ctc_loss_and_gradient():
    """Scoring only the real frames changes nothing: same CTC loss and input gradient as the
    classifier run over every position of a zero-padded batch."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(30, 8, generator=gen)
    inputs = torch.randn(3, 9, 8, generator=gen, requires_grad=True)
    is_speech = torch.zeros(3, 9, dtype=torch.bool)
    is_speech[0, 1:8], is_speech[1, 2:5], is_speech[2, 0:9:2] = True, True, True
    targets, target_lengths = torch.tensor([3, 7, 7, 2, 5, 4, 9, 1]), torch.tensor([4, 2, 2])

    log_probs, lengths = speech_log_probs(inputs, is_speech, table)
    packed = F.ctc_loss(log_probs, targets, lengths, target_lengths, blank=30)
    (packed_grad,) = torch.autograd.grad(packed, inputs)

    padded = torch.zeros(3, int(lengths.max()), 8)
    for row in range(3):
        padded[row, : int(lengths[row])] = inputs[row][is_speech[row]]
    reference = F.ctc_loss(frame_log_probs(padded, table).transpose(0, 1), targets, lengths, target_lengths, blank=30)
    (reference_grad,) = torch.autograd.grad(reference, inputs)
    assert lengths.tolist() == [7, 3, 5]
    assert log_probs.shape == (7, 3, 31)
    torch.testing.assert_close(packed, reference)
    torch.testing.assert_close(packed_grad, reference_grad)
