"""``manifest``: a user's own speech data, as a JSONL manifest or a folder of audio + .txt.

``path`` is either a JSONL manifest (``audio_filepath`` relative to the manifest's folder or
absolute, ``text``, optional ``id``, ``speaker``, ``split``, ``task``) or a folder searched
recursively for audio files, each with a transcript in a ``.txt`` file of the same stem.
``prepare`` converts every usable file to 16 kHz mono FLAC under ``root/audio`` and writes
``utterances.jsonl`` in the corpus format; bad files are skipped and listed in
``bad_files.json`` (or stop the run with one line when ``strict``).
"""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolkit.registry import API_VERSION
from toolkit.contracts import SpeechDataset
from toolkit.data.audio import AudioError, load_audio, save_audio, torch_threads
from toolkit.data.loaders import BadFileReport
from toolkit.data.manifest import write_manifest
from toolkit.errors import ToolkitError
from toolkit.io import read_jsonl, write_json

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass
class ManifestParams:
    path: str
    """A JSONL manifest or a folder of audio files with .txt transcripts."""
    sample_rate: int = 16000
    format: Literal["flac", "wav"] = "flac"
    max_seconds: float = 30.0
    """Longer files are rejected (listed in the report)."""
    min_seconds: float = 0.05
    split_fractions: dict[str, float] = field(default_factory=lambda: {
        "train": 0.9, "val": 0.05, "test": 0.05})
    """For rows without a ``split``: a seeded, per-file split."""
    task: str = "sentence"
    seed: int = 0
    strict: bool = False
    workers: int = 2


class ManifestDataset(SpeechDataset):
    """Bring a user's files into the corpus format (see the module docstring)."""

    Params = ManifestParams
    api_version = API_VERSION

    def __init__(self, params: ManifestParams) -> None:
        self.params = params

    def source_rows(self, report: BadFileReport) -> tuple[list[dict[str, Any]], Path]:
        """Rows with absolute ``audio_filepath``; bad manifest lines go to ``report``."""
        src = Path(self.params.path).expanduser()
        if src.is_dir():
            rows = []
            for audio in sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
                txt = audio.with_suffix(".txt")
                text = txt.read_text(encoding="utf-8", errors="replace").strip() \
                    if txt.is_file() else None
                rows.append({"id": audio.relative_to(src).with_suffix("").as_posix(),
                             "audio_filepath": str(audio), "text": text})
            return rows, src
        if not src.is_file():
            raise ToolkitError(f"data.params.path: {src} is neither a manifest nor a folder")
        errors: list[dict[str, Any]] = []
        rows = read_jsonl(src, None if self.params.strict else errors)
        for err in errors:
            report.add(f"line {err['line']}", err["path"], err["reason"],
                       f"{err['path']}: {err['detail']}")
        report.total += len(errors)
        for i, row in enumerate(rows):
            row.setdefault("id", f"utt{i:06d}")
            if row.get("audio_filepath"):
                row["audio_filepath"] = str(src.parent / str(row["audio_filepath"]))
        return rows, src

    def prepare(self, root: Path) -> dict[str, Path]:
        """Convert usable files into ``root/audio`` and write ``root/utterances.jsonl``."""
        p, root = self.params, Path(root)
        report = BadFileReport(root / "bad_files.json", p.strict)
        rows, _ = self.source_rows(report)
        report.total += len(rows)
        with ThreadPoolExecutor(max(1, p.workers)) as pool, torch_threads(1):
            out = list(pool.map(lambda row: self._convert(row, root, report), rows))
        kept = [row for row in out if row is not None]
        seen: set[str] = set()
        for row in kept:
            if row["id"] in seen:
                raise ToolkitError(f"{p.path}: utterance id {row['id']!r} appears twice")
            seen.add(row["id"])
        utterances = root / "utterances.jsonl"
        write_manifest(utterances, kept)
        report.write()
        write_json(root / "corpus.json", {"plugin": "manifest", "source": str(p.path),
                                          "utterances": len(kept), "skipped": len(report.files)})
        return {"utterances": utterances}

    def _convert(self, row: dict[str, Any], root: Path, report: BadFileReport) -> dict | None:
        p = self.params
        uid = str(row.get("id"))
        text = row.get("text")
        src = row.get("audio_filepath")
        if not src:
            report.add(uid, "", "missing_path", f"entry {uid}: no audio_filepath")
            return None
        if not isinstance(text, str) or not text.strip():
            report.add(uid, str(src), "missing_transcript", f"{src}: no transcript")
            return None
        try:
            wav = load_audio(src, p.sample_rate, p.max_seconds)
            if wav.numel() < p.min_seconds * p.sample_rate:
                raise AudioError(src, "too_short", f"audio is {wav.numel() / p.sample_rate:.3f} s,"
                                                   f" shorter than {p.min_seconds:g} s")
        except AudioError as err:
            report.add(uid, str(src), err.reason, str(err))
            return None
        digest = hashlib.sha1(f"{uid}\x00{src}".encode()).hexdigest()[:10]
        rel = f"audio/{digest}.{p.format}"
        if not (root / rel).is_file():
            save_audio(root / rel, wav.clamp(-1, 1), p.sample_rate)
        return {**row, "id": uid, "audio_filepath": rel, "text": text.strip(),
                "duration": round(wav.numel() / p.sample_rate, 5), "num_samples": wav.numel(),
                "speaker": str(row.get("speaker", "")),
                "split": row.get("split") or self._split_of(uid),
                "task": row.get("task") or p.task}

    def _split_of(self, uid: str) -> str:
        rng = random.Random(f"{self.params.seed}:{uid}")
        fractions = self.params.split_fractions
        x = rng.random() * sum(fractions.values())
        for name, f in fractions.items():
            x -= f
            if x < 0:
                return name
        return next(iter(fractions))


__all__ = ["ManifestDataset", "ManifestParams"]
