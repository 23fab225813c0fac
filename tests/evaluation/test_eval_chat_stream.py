"""Streaming answers: the WAV file is complete and valid after every piece and only grows;
the chat command writes a valid answer and reports time to first audio; bad audio is one line."""

import numpy as np
import soundfile as sf
import torch

from toolkit.speech_lm.inference import generation_config, respond
from toolkit.data.wavstream import StreamingWav
from toolkit.loading import export_model


def test_streaming_wav_is_valid_after_every_append(tmp_path):
    path = tmp_path / "a.wav"
    sink = StreamingWav(path, 16000)
    assert sf.info(str(path)).frames == 0
    pieces = [np.sin(np.arange(n) / 7.0).astype(np.float32) * 0.5 for n in (100, 640, 33)]
    for i, piece in enumerate(pieces):
        sink.append(piece)
        data, rate = sf.read(str(path), dtype="float32")
        expected = np.concatenate(pieces[: i + 1])
        assert rate == 16000 and data.shape == expected.shape
        assert np.abs(data - expected).max() <= 1 / 32767 + 1e-6   # 16-bit quantisation only


def test_respond_streams_growing_valid_file(tiny_lm, tmp_path):
    path = tmp_path / "answer.wav"
    sink = StreamingWav(path, tiny_lm.decoder.sample_rate)
    sizes = []

    def on_audio(wav):
        sink.append(wav)
        sizes.append(sf.info(str(path)).frames)           # a reader opening the file now

    config = generation_config(max_new_tokens=20, min_new_tokens=16)
    answer = respond(tiny_lm, "What is the capital of France?", "t2s", config=config,
                     on_audio=on_audio, chunk_tokens=6)
    assert len(sizes) >= 2 and sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert answer.codes.numel() >= 16                       # min_new_tokens held across chunks
    data, _ = sf.read(str(path), dtype="float32")
    assert data.shape[0] == answer.wav.numel() == sizes[-1]
    assert answer.first_audio_s is not None and answer.first_audio_s <= answer.compute_s


def test_streamed_codes_equal_one_pass_codes(tiny_lm):
    config = generation_config(max_new_tokens=20, min_new_tokens=12)
    once = respond(tiny_lm, "Who wrote Hamlet?", "t2s", config=config)
    streamed = respond(tiny_lm, "Who wrote Hamlet?", "t2s", config=config,
                       on_audio=lambda wav: None, chunk_tokens=5)
    assert torch.equal(once.codes, streamed.codes)


def _cli(capsys, *argv):
    from toolkit.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_cli_writes_valid_audio_and_reports_first_audio(tiny_lm, tmp_path, capsys):
    export_model(tiny_lm, tmp_path / "exp")
    out = tmp_path / "answer.wav"
    code, _, err = _cli(capsys, "chat", tmp_path / "exp", "--text", "What is the capital of Japan?",
                        "--out", out, "--min-new-tokens", 10, "--max-new-tokens", 14)
    assert code == 0, err
    assert "time to first audio:" in err
    info = sf.info(str(out))
    assert info.samplerate == tiny_lm.decoder.sample_rate and info.frames >= 10 * 640

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    code, _, err = _cli(capsys, "chat", tmp_path / "exp", "--audio", bad, "--out", out)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "bad.wav" in lines[0]
