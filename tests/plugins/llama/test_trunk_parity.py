"""Our Llama-family trunk against ``transformers`` on tiny random checkpoints (fp32)."""

from __future__ import annotations

import torch

from toolkit.textgen import generate, left_pad

PROMPTS = [[5, 17, 99, 3, 42, 8, 77], [11, 12, 13, 14], [101, 7]]


def hf_positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).masked_fill(~mask, 1)


def test_logits_match_on_left_padded_batch(hf_pair):
    model, ours = hf_pair
    ids, mask = left_pad(PROMPTS, pad_id=0)
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask.long(), position_ids=hf_positions(mask)).logits
        got = ours(ids, attention_mask=mask)
    assert got.shape == want.shape
    assert (got - want)[mask].abs().max() < 1e-4


def test_logits_match_unpadded_and_with_cache(hf_pair):
    model, ours = hf_pair
    ids = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        want = model(input_ids=ids).logits
        cache = ours.new_cache()
        first = ours(ids[:, :4], cache=cache)
        rest = [ours(ids[:, i:i + 1], cache=cache) for i in range(4, ids.shape[1])]
    got = torch.cat([first, *rest], dim=1)
    assert (got - want).abs().max() < 1e-4


def test_greedy_generation_matches_transformers(hf_pair):
    model, ours = hf_pair
    new = 12
    ids, mask = left_pad(PROMPTS, pad_id=0)
    with torch.no_grad():
        hf_out = model.generate(input_ids=ids, attention_mask=mask.long(), max_new_tokens=new,
                                min_new_tokens=new, do_sample=False, pad_token_id=0)
    want = hf_out[:, ids.shape[1]:].tolist()
    cached = generate(ours, PROMPTS, max_new_tokens=new, use_cache=True)
    uncached = generate(ours, PROMPTS, max_new_tokens=new, use_cache=False)
    assert cached == want
    assert uncached == want


def test_save_pretrained_round_trip_is_readable_by_transformers(hf_pair, tmp_path):
    import transformers

    model, ours = hf_pair
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").float().eval()
    ids = torch.tensor([PROMPTS[1]])
    with torch.no_grad():
        assert (back(input_ids=ids).logits - model(input_ids=ids).logits).abs().max() < 1e-5
