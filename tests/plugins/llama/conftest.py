"""Shared fixtures of the trunk tests: tiny random Hugging Face checkpoints written to tmp dirs."""

from __future__ import annotations

import pytest
import torch

TINY = dict(vocab_size=128, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=96, max_position_embeddings=256,
            rms_norm_eps=1e-5, rope_theta=10000.0, initializer_range=0.25, pad_token_id=0, bos_token_id=1, eos_token_id=2)

VARIANTS = {
    "llama": dict(model_type="llama", tie_word_embeddings=False),
    "llama-tied-llama3rope": dict(model_type="llama", tie_word_embeddings=True,
                                  rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                "original_max_position_embeddings": 16}),
    "qwen2": dict(model_type="qwen2", tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", tie_word_embeddings=False, head_dim=24),
    "mistral-linear-rope": dict(model_type="mistral", sliding_window=None,
                                rope_scaling={"rope_type": "linear", "factor": 2.0}),
}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, two threads contend and run far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def hf_model(variant: str, seed: int = 0):
    """A tiny random ``transformers`` model of ``variant`` in fp32 eval mode."""
    transformers = pytest.importorskip("transformers")
    kwargs = {**TINY, **VARIANTS[variant]}
    config = transformers.AutoConfig.for_model(**kwargs)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    with torch.no_grad():  # norms are initialised to 1: perturb them so they are tested too
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model.float().eval()


@pytest.fixture(params=list(VARIANTS))
def hf_pair(request, tmp_path):
    """(transformers model, our trunk loaded from its save_pretrained folder)."""
    import toolkit

    model = hf_model(request.param)
    model.save_pretrained(tmp_path)
    ours = toolkit.build("trunk", "llama", checkpoint=str(tmp_path)).eval()
    return model, ours
