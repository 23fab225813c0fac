"""Bad input: a manifest with many kinds of broken files; the good ones all arrive."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from toolkit.data.audio import AudioError, load_audio
from toolkit.data.datamodule import AudioDataModule
from toolkit.errors import ToolkitError

SR = 16000


def tone(seconds: float, freq: float = 220.0, rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_corpus(root: Path) -> tuple[Path, dict[str, str], set[str]]:
    """A manifest of good files and bad ones; returns (manifest, bad id -> reason, good ids)."""
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict | str] = []
    good: set[str] = set()

    def add(uid: str, name: str, text: str | None = "hello world", **extra) -> None:
        row = {"id": uid, "audio_filepath": name, "split": "train", "speaker": "s", **extra}
        if text is not None:
            row["text"] = text
        rows.append(row)

    for i in range(6):
        sf.write(root / f"good{i}.flac", tone(0.5 + 0.1 * i, 200 + 50 * i), SR)
        add(f"good{i}", f"good{i}.flac")
        good.add(f"good{i}")
    sf.write(root / "rate.wav", tone(0.6, rate=22050), 22050)  # resampled, not an error
    add("rate", "rate.wav")
    sf.write(root / "stereo.wav", np.stack([tone(0.6), tone(0.6, 330)], 1), SR)  # downmixed
    add("stereo", "stereo.wav")
    good |= {"rate", "stereo"}

    bad = {}
    (root / "garbage.flac").write_bytes(bytes(range(256)) * 40)
    add("garbage", "garbage.flac"); bad["garbage"] = "unreadable"
    sf.write(root / "long.flac", tone(3.0), SR)
    sf.write(root / "two.flac", tone(2.0), SR)
    full = (root / "two.flac").read_bytes()
    (root / "truncflac.flac").write_bytes(full[: len(full) // 3])
    add("truncflac", "truncflac.flac"); bad["truncflac"] = "corrupt"  # libsndfile: decode error
    sf.write(root / "wav.wav", tone(2.0), SR, subtype="PCM_16")
    wav = (root / "wav.wav").read_bytes()
    (root / "truncwav.wav").write_bytes(wav[: len(wav) // 2])
    add("truncwav", "truncwav.wav"); bad["truncwav"] = "truncated"
    sf.write(root / "empty.wav", np.zeros(0, np.float32), SR)
    add("empty", "empty.wav"); bad["empty"] = "empty"
    (root / "zero.flac").write_bytes(b"")
    add("zero", "zero.flac"); bad["zero"] = "zero_bytes"
    nan = tone(0.5); nan[100] = np.nan; nan[200] = np.inf
    sf.write(root / "nan.wav", nan, SR, subtype="FLOAT")
    add("nan", "nan.wav"); bad["nan"] = "non_finite"
    add("long", "long.flac"); bad["long"] = "too_long"
    add("missing", "does_not_exist.flac"); bad["missing"] = "missing"
    sf.write(root / "notext.flac", tone(0.5), SR)
    add("notext", "notext.flac", text=None); bad["notext"] = "missing_transcript"
    add("blank", "notext.flac", text="   "); bad["blank"] = "missing_transcript"
    (root / "notes.flac").write_text("these are my notes, not audio\n" * 50)
    add("notaudio", "notes.flac"); bad["notaudio"] = "unreadable"
    add("nopath", "", ); bad["nopath"] = "missing_path"
    rows.insert(3, '{"id": "broken", "audio_filepath": ')
    rows.insert(7, '[1, 2, 3]')
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                                for r in rows))
    return manifest, bad, good


def test_every_bad_kind_is_reported_and_every_good_file_arrives(tmp_path: Path) -> None:
    manifest, bad, good = make_corpus(tmp_path / "c")
    dm = AudioDataModule(manifest, tmp_path / "c", SR, batch_seconds=2.0, val_split=None,
                         max_seconds=2.5, report_dir=tmp_path / "run")
    dm.setup("fit")
    seen = []
    for _ in range(2):  # two epochs: nothing crashes, same files each time
        ids = [i for batch in dm.train_dataloader() for i in batch["id"]]
        seen.append(sorted(ids))
    assert seen[0] == seen[1] == sorted(good)

    report = json.loads((tmp_path / "run" / "bad_files_train.json").read_text())
    reasons = {f["id"]: f["reason"] for f in report["files"]}
    assert {k: reasons.get(k) for k in bad} == bad
    assert sorted(k for k in reasons if k.startswith("line")) == ["line 4", "line 8"]
    assert len(set(report["by_reason"])) >= 10
    assert report["skipped"] == len(bad) + 2 and report["total"] == len(bad) + len(good) + 2
    assert report["converted"] == {"downmixed": 1, "resampled": 1}
    for f in report["files"]:
        assert "\n" not in f["detail"]


def test_converted_files_match_a_reference(tmp_path: Path) -> None:
    manifest, _, _ = make_corpus(tmp_path / "c")
    stereo = load_audio(tmp_path / "c" / "stereo.wav", SR)
    ref = (tone(0.6) + tone(0.6, 330)) / 2
    assert torch.allclose(stereo, torch.from_numpy(ref), atol=1e-4)  # PCM_16 rounding
    up = load_audio(tmp_path / "c" / "rate.wav", SR)
    assert up.numel() == round(0.6 * SR)
    spectrum = torch.fft.rfft(up).abs()
    assert abs(int(spectrum.argmax()) * SR / up.numel() - 220.0) < 2.0


def test_strict_mode_stops_with_one_line(tmp_path: Path) -> None:
    manifest, _, _ = make_corpus(tmp_path / "c")
    dm = AudioDataModule(manifest, tmp_path / "c", SR, val_split=None, max_seconds=2.5,
                         strict=True)
    with pytest.raises(ToolkitError) as err:
        dm.setup("fit")
    assert "\n" not in str(err.value) and "manifest.jsonl:4" in str(err.value)


def test_file_damaged_after_the_scan_is_skipped_mid_epoch(tmp_path: Path) -> None:
    manifest, _, good = make_corpus(tmp_path / "c")
    dm = AudioDataModule(manifest, tmp_path / "c", SR, batch_seconds=1.2, val_split=None,
                         max_seconds=2.5, report_dir=tmp_path / "run")
    dm.setup("fit")
    (tmp_path / "c" / "good3.flac").write_bytes(b"\x00" * 100)
    ids = [i for batch in dm.train_dataloader() for i in batch["id"]]
    assert sorted(ids) == sorted(good - {"good3"})
    report = json.loads((tmp_path / "run" / "bad_files_train.json").read_text())
    assert any(f["id"] == "good3" for f in report["files"])


def test_manifest_plugin_converts_folder_and_manifest(tmp_path: Path) -> None:
    import toolkit

    manifest, bad, good = make_corpus(tmp_path / "c")
    ds = toolkit.build("dataset", "manifest", path=str(manifest), max_seconds=2.5)
    paths = ds.prepare(tmp_path / "out")
    rows = [json.loads(line) for line in paths["utterances"].read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(good)
    for r in rows:
        data, rate = sf.read(tmp_path / "out" / r["audio_filepath"])
        assert rate == SR and data.ndim == 1 and math.isclose(len(data) / SR, r["duration"])
    report = json.loads((tmp_path / "out" / "bad_files.json").read_text())
    assert {f["id"]: f["reason"] for f in report["files"] if f["id"] in bad} == bad

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a.wav", tone(0.5), SR)
    (folder / "a.txt").write_text("first clip\n")
    sf.write(folder / "sub" / "b.flac", tone(0.5, rate=8000), 8000)
    (folder / "sub" / "b.txt").write_text("second clip")
    sf.write(folder / "c.wav", tone(0.5), SR)  # no transcript
    ds = toolkit.build("dataset", "manifest", path=str(folder))
    rows = [json.loads(x) for x in ds.prepare(tmp_path / "out2")["utterances"].read_text()
            .splitlines()]
    assert {r["id"]: r["text"] for r in rows} == {"a": "first clip", "sub/b": "second clip"}
    assert all(r["split"] in ("train", "val", "test") for r in rows)


def test_load_audio_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nothere.wav: audio file not found"):
        load_audio(tmp_path / "nothere.wav", SR)
    sf.write(tmp_path / "x.wav", tone(1.0), SR)
    with pytest.raises(AudioError, match="longer than the limit"):
        load_audio(tmp_path / "x.wav", SR, max_seconds=0.5)
