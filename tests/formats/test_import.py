"""A MOSS-Speech folder imports as our split model with the checkpoint's forward semantics."""

from __future__ import annotations

import torch

import toolkit
from toolkit.formats.moss_layout import read_folder
from toolkit.formats.moss_speech import load_moss
from toolkit.speech_lm.generate import GenerationConfig, generate
from toolkit.speech_lm.layout import speech_positions, text_positions

from moss_reference import reference_forward


def _grid(lm) -> torch.Tensor:
    """A user turn of text, a speech segment (codes incl. the audio_pad value 5), and an
    assistant header ending in sosp: both embeddings and both channels are exercised."""
    tok, tokens = lm.text_tokenizer, lm.tokens
    head = text_positions(tok.encode("<|im_start|>user\nhi "), tokens)
    speech = speech_positions([3, 5, 63, 17, 0], tokens)
    tail = text_positions(tok.encode("<|im_end|>\n<|im_start|>assistant\n<|object_ref_start|>"), tokens)
    return torch.cat([head, speech, tail])[None]


def test_structure_and_tokens(moss_dir):
    lm = load_moss(moss_dir)
    t = lm.tokens
    assert (t.sosp, t.modality_pad, t.eosp, t.speech_pad) == (259, 300, 64, 5)
    assert (t.text_vocab_size, t.speech_vocab_size, t.speech_table_size) == (320, 64, 80)
    m = lm.model
    assert len(m.shared) == 2 and len(m.branches["text"].layers) == 2 == len(m.branches["speech"].layers)
    assert m.branches["text"].head.weight is not m.embed_tokens.weight  # untied
    assert m.shared[0].self_attn.q_norm is not None  # Qwen3 per-head q/k RMSNorm
    _, tensors, _ = read_folder(moss_dir)
    torch.testing.assert_close(m.branches["speech"].norm.weight, tensors["model.audio_norm.weight"].float())
    torch.testing.assert_close(m.branches["text"].norm.weight, tensors["model.text_norm.weight"].float())


def test_forward_matches_contract_reference(moss_dir):
    lm = load_moss(moss_dir)
    cfg, tensors, _ = read_folder(moss_dir)
    ids = _grid(lm)
    ref_text, ref_speech = reference_forward(tensors, cfg.raw, ids)
    with torch.no_grad():
        out = lm.model(ids)
    torch.testing.assert_close(out.text_logits, ref_text, atol=2e-4, rtol=1e-4)
    finite = torch.isfinite(ref_speech)
    assert torch.equal(torch.isfinite(out.speech_logits), finite)
    assert not finite[..., 65:].any() and finite[..., :65].all()  # masked from eosp + 1 = 65 up
    torch.testing.assert_close(out.speech_logits[finite], ref_speech[finite], atol=2e-4, rtol=1e-4)


def test_speech_embedding_only_where_text_is_modality_pad(moss_dir):
    """Changing the speech id at a text position changes nothing; at a pad position it does."""
    lm = load_moss(moss_dir)
    ids = _grid(lm)
    with torch.no_grad():
        base = lm.model(ids).text_logits
        other = ids.clone()
        other[0, 0, 1] = 40  # speech channel of a text-live position
        assert torch.equal(lm.model(other).text_logits, base)
        pad = int((ids[0, :, 0] == lm.tokens.modality_pad).nonzero()[1])  # a code of the segment
        other[0, pad, 1] = 40
        changed = lm.model(other).text_logits
        assert torch.equal(changed[0, :pad], base[0, :pad])  # causal
        assert not torch.allclose(changed[0, pad:], base[0, pad:])


def test_both_tails_with_own_caches_match_full_forward(moss_dir):
    """Incremental decoding, including a stretch where only the text tail runs (the speech
    tail then catches up from its own cache), equals the full forward at every position."""
    lm = load_moss(moss_dir)
    ids = _grid(lm)
    with torch.no_grad():
        full = lm.model(ids)
        caches = lm.model.new_caches()
        n = ids.shape[1]
        text_steps, speech_steps = [], {}
        for i in range(n):
            branches = ("text",) if 3 <= i < 12 else ("text", "speech")
            o = lm.model(ids[:, i:i + 1], branches=branches, caches=caches)
            text_steps.append(o.text_logits)
            if o.speech_logits is not None:
                speech_steps[i] = o.speech_logits
    torch.testing.assert_close(torch.cat(text_steps, 1), full.text_logits, atol=1e-4, rtol=1e-4)
    for i, s in speech_steps.items():
        f = full.speech_logits[:, i:i + 1]
        assert torch.equal(torch.isfinite(s), torch.isfinite(f))
        torch.testing.assert_close(s[torch.isfinite(s)], f[torch.isfinite(f)], atol=1e-4, rtol=1e-4)
    assert caches.text.length == caches.speech.length == n  # both tails saw every position


def test_chat_format_and_system_prompts(moss_dir):
    lm = load_moss(moss_dir)
    tok = lm.text_tokenizer
    ids = tok.chat([{"role": "system", "content": "S"}, {"role": "user", "content": "q"}])
    assert tok.decode(ids, skip_special=False) == \
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    assert "spoken" in tok.system_prompts["speech"] and "text" in tok.system_prompts["text"]
    assert set(tok.eos_ids) == {258, 256}  # <|im_end|> and <|endoftext|>


def test_generates_in_four_modes(moss_dir):
    """Greedy answers in S->S, S->T, T->S, T->T: speech answers open with sosp in the prompt,
    carry only codes below eosp, and the first speech step is the reference's argmax."""
    from toolkit.speech_lm.inference import prompt_grid
    from toolkit.sampling import SamplingParams

    lm = load_moss(moss_dir)
    cfg, tensors, _ = read_folder(moss_dir)
    greedy = SamplingParams(temperature=0.0)
    config = GenerationConfig(max_new_tokens=6, text=greedy, speech=greedy, keep_logits=True)
    for mode in ("s2s", "s2t", "t2s", "t2t"):
        question = torch.tensor([7, 8, 9]) if mode[0] == "s" else "hello"
        grid = prompt_grid(lm, mode, question, system=lm.text_tokenizer.system_prompts["speech" if mode[2] == "s" else "text"])
        assert (int(grid[-1, 0]) == lm.tokens.sosp) == (mode[2] == "s")
        out = generate(lm.model, [grid], config)[0]
        assert len(out.ids) > 0
        _, ref_speech = reference_forward(tensors, cfg.raw, grid[None])
        first = out.ids[0]
        if mode[2] == "s":
            assert int(first[0]) == lm.tokens.modality_pad
            assert int(first[1]) == int(ref_speech[0, -1].argmax())
            assert all(int(c) < lm.tokens.eosp for seg in out.speech for c in seg)
        else:
            assert int(first[0]) != lm.tokens.modality_pad


def test_registry_builds_the_same_model(moss_dir):
    trunk = toolkit.build("trunk", "moss_speech", checkpoint=str(moss_dir))
    model = toolkit.build("splitter", "moss_split", trunk=trunk)
    assert model.tokens == load_moss(moss_dir).tokens
