"""Generation: lazy branches equal running both every step; the modality state machine."""

from __future__ import annotations

import torch

from toolkit.sampling import SamplingParams
from toolkit.speech_lm import GenerationConfig, generate, speech_positions, text_positions

from speech_lm_helpers import tiny_split


def switching_model():
    """A tiny split whose heads favour sosp / eosp, so sequences change modality often."""
    _, model = tiny_split(seed=1)
    t = model.tokens
    with torch.no_grad():
        model.branches["text"].head.weight[t.sosp] *= 30
        model.branches["speech"].head.weight[t.eosp] *= 30
    return model.eval()


def prompts(t):
    return [text_positions([1, 2, 3], t),
            torch.cat([text_positions([5, 6], t), speech_positions([1, 2, 3], t, close=False)]),
            text_positions([7, 8, 9, 10, 11, t.sosp], t)]


def run(model, run_all, min_new=3, seed=0, **kw):
    cfg = GenerationConfig(max_new_tokens=40, min_new_tokens=min_new,
                           text=SamplingParams(temperature=1.0, repetition_penalty=1.2),
                           speech=SamplingParams(temperature=1.0, top_k=20), stop_ids=(0,),
                           run_all_branches=run_all, keep_logits=True, **kw)
    return generate(model, prompts(model.tokens), cfg, torch.Generator().manual_seed(seed))


def test_lazy_branches_equal_running_both_every_step():
    model = switching_model()
    for seed in range(3):
        lazy, full = run(model, False, seed=seed), run(model, True, seed=seed)
        switches = 0
        for a, b in zip(lazy, full):
            assert torch.equal(a.ids, b.ids)
            assert len(a.logits) == len(b.logits)
            for x, y in zip(a.logits, b.logits):
                torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
            switches += len(a.speech)
        assert switches >= 3  # the test really exercises modality changes


def test_state_machine_rules():
    model = switching_model()
    t = model.tokens
    for seed in range(3):
        for out in run(model, False, min_new=4, seed=seed):
            speech_ids = out.ids[out.ids[:, 0] == t.modality_pad, 1]
            assert int(speech_ids.max()) <= t.eosp  # speech_pad is never produced
            assert not bool((out.ids[:, 0] == t.modality_pad).logical_and(out.ids[:, 1] == t.speech_pad).any())
            complete = out.speech[:-1] if out.ids[-1, 1] != t.eosp else out.speech
            for seg in complete[1:]:  # segments started during generation
                assert len(seg) >= 4
            # after sosp comes speech, after eosp comes text
            for i in range(len(out.ids) - 1):
                if out.ids[i, 0] == t.sosp:
                    assert out.ids[i + 1, 0] == t.modality_pad
                if out.ids[i, 0] == t.modality_pad and out.ids[i, 1] == t.eosp:
                    assert out.ids[i + 1, 0] != t.modality_pad


def test_stop_on_end_of_turn_and_batch_equals_single():
    _, model = tiny_split(seed=2)
    model.eval()
    t = model.tokens
    ps = prompts(t)
    cfg = GenerationConfig(max_new_tokens=12, stop_ids=(5, 9, 17, 33, 65))
    batch = generate(model, ps, cfg)
    for p, b in zip(ps, batch):
        (single,) = generate(model, [p], cfg)
        assert torch.equal(single.ids, b.ids)
        if b.stopped:
            assert int(b.ids[-1, 0]) in cfg.stop_ids and len(b.ids) <= 12
        else:
            assert len(b.ids) == 12


def test_reading_by_word_gives_each_text_the_same_codes_in_a_batch_as_alone():
    from toolkit.speech_lm.interleave import read_interleaved

    _, model = tiny_split(seed=3)
    model.eval()
    texts = ["ab cd ef", "g", "hi jk"]  # different word counts: finished texts leave the batch
    together = read_interleaved(model, texts, max_codes_per_word=4)
    for text, codes in zip(texts, together):
        (alone,) = read_interleaved(model, [text], max_codes_per_word=4)
        assert torch.equal(alone, codes) and len(codes) <= 4 * len(text.split())


def test_reading_words_alone_says_each_word_as_if_it_were_the_whole_text():
    """``alone``: a word's codes cannot depend on the words before it; read in a sentence
    (the default) they do, so the test can tell the two apart."""
    from toolkit.speech_lm.interleave import read_interleaved

    _, model = tiny_split(seed=3)
    model.eval()
    words = ["ab", "cd", "ef"]
    alone = read_interleaved(model, [" ".join(words), "cd"], max_codes_per_word=4, alone=True)
    each = [read_interleaved(model, [w], max_codes_per_word=4)[0] for w in words]
    assert torch.equal(alone[0], torch.cat(each)) and torch.equal(alone[1], each[1])
    assert len(alone[0]) > len(words)
    in_sentence = read_interleaved(model, [" ".join(words)], max_codes_per_word=4)[0]
    assert not torch.equal(in_sentence, alone[0])
