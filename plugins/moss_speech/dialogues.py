"""``spoken_dialogues``: a user's spoken dialogues for SFT, from one JSONL manifest.

Each line is a dialogue::

    {"id": "d1", "mode": "s2s", "split": "train",
     "turns": [{"role": "user", "text": "...", "audio_filepath": "u1.wav"},
               {"role": "assistant", "text": "...", "audio_filepath": "a1.wav"}]}

``mode`` (``s2s``, ``s2t``, ``t2s``, ``t2t``) says which sides are spoken; a spoken side's turns
need ``audio_filepath`` (relative to the manifest's folder or absolute) and every turn needs
``text``. ``prepare`` converts the audio like the ``manifest`` dataset and writes
``utterances.jsonl`` (one row per spoken turn) and ``dialogues.jsonl`` (turns ``{role, text,
utt}``), opening each dialogue with the MOSS-Speech system prompt of its output modality
(``system_prompts: moss``). Dialogues with unusable audio are skipped and listed in
``bad_files.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from toolkit.registry import API_VERSION
from toolkit.contracts import SpeechDataset
from toolkit.data.loaders import BadFileReport
from toolkit.data.manifest import write_manifest
from toolkit.errors import ToolkitError
from toolkit.io import read_jsonl, write_json
from toolkit.speech_lm.sequences import MODES

from plugins.manifest import ManifestDataset, ManifestParams
from plugins.moss_speech.text import SYSTEM_PROMPTS


@dataclass
class DialogueParams:
    path: str
    """The dialogues manifest (JSONL, one dialogue a line)."""
    system_prompts: Literal["moss", "none"] = "moss"
    """Open each dialogue with MOSS-Speech's system prompt for its output modality, or not
    (a dialogue's own ``system`` turn is kept either way)."""
    sample_rate: int = 16000
    max_seconds: float = 30.0
    strict: bool = False
    workers: int = 2


class SpokenDialogues(SpeechDataset):
    """Spoken chat dialogues from a JSONL manifest (see the module docstring)."""

    Params = DialogueParams
    api_version = API_VERSION

    def __init__(self, params: DialogueParams) -> None:
        self.params = params

    def prepare(self, root: Path) -> dict[str, Path]:
        p, root = self.params, Path(root)
        src = Path(p.path).expanduser()
        report = BadFileReport(root / "bad_files.json", p.strict)
        audio = ManifestDataset(ManifestParams(path=str(src), sample_rate=p.sample_rate,
                                               max_seconds=p.max_seconds, strict=p.strict))
        utterances, dialogues = [], []
        for n, d in enumerate(read_jsonl(src)):
            d = self._check(d, n, src)
            report.total += 1
            converted = self._convert_turns(d, src, root, audio, report)
            if converted is None:
                continue
            utts, turns = converted
            utterances += utts
            dialogues.append({"id": d["id"], "mode": d["mode"], "split": d["split"], "turns": turns})
        paths = {"utterances": root / "utterances.jsonl", "dialogues": root / "dialogues.jsonl"}
        write_manifest(paths["utterances"], utterances)
        write_manifest(paths["dialogues"], dialogues)
        report.write()
        write_json(root / "corpus.json", {"plugin": "spoken_dialogues", "source": str(src),
                                          "dialogues": len(dialogues), "utterances": len(utterances)})
        return paths

    @staticmethod
    def _check(d: dict[str, Any], n: int, src: Path) -> dict[str, Any]:
        where = f"{src}: dialogue {d.get('id', n)}"
        if d.get("mode") not in MODES:
            raise ToolkitError(f"{where}: mode {d.get('mode')!r} is not one of {', '.join(MODES)}")
        turns = d.get("turns")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) and isinstance(
                t.get("text"), str) and t.get("role") in ("system", "user", "assistant") for t in turns):
            raise ToolkitError(f"{where}: needs turns of {{role: system|user|assistant, text, audio_filepath?}}")
        return {**d, "id": str(d.get("id", n)), "split": d.get("split", "train")}

    def _convert_turns(self, d: dict, src: Path, root: Path, audio: ManifestDataset,
                       report: BadFileReport) -> tuple[list[dict], list[dict]] | None:
        spoken = {"user": d["mode"][0] == "s", "assistant": d["mode"][2] == "s"}
        turns, utts = [], []
        if self.params.system_prompts == "moss" and d["turns"][0]["role"] != "system":
            out = "speech" if d["mode"][2] == "s" else "text"
            turns.append({"role": "system", "text": SYSTEM_PROMPTS[out], "utt": None})
        for j, t in enumerate(d["turns"]):
            utt = None
            if spoken.get(t["role"], False):
                path = t.get("audio_filepath")
                if path and not Path(path).is_absolute():
                    path = str(src.parent / path)
                row = audio._convert({"id": f"{d['id']}-{j}", "audio_filepath": path, "text": t["text"],
                                      "speaker": t.get("speaker", ""), "split": d["split"]}, root, report)
                if row is None:
                    return None
                utts.append(row)
                utt = row["id"]
            turns.append({"role": t["role"], "text": t["text"], "utt": utt})
        return utts, turns


__all__ = ["SpokenDialogues", "DialogueParams"]
