"""Speech codes precomputed once per tokenizer checkpoint, loaded by memory map.

A cache lives in ``cache_root/<tokenizer hash>-<data hash>/``: the tokenizer hash covers its
class, parameters and every state_dict tensor (so retraining gives a new folder and stale codes
are never read), the data hash covers the utterance ids and their audio files. Codes are flat
``int16``/``int32`` ``.npy`` shards; ``index.json`` maps id -> (shard, offset, length). Shards
are written atomically into a ``.partial`` folder that an interrupted build resumes; the
finished folder appears by one rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.contracts import SpeechTokenizer
from toolkit.data.audio import AudioError, load_audio
from toolkit.data.loaders import collate_audio
from toolkit.errors import ToolkitError
from toolkit.io import atomic_write, read_json, write_json

INDEX = "index.json"


def tokenizer_hash(tokenizer: torch.nn.Module) -> str:
    """Content hash of a tokenizer: class, params, rates and every state_dict tensor."""
    h = hashlib.sha256()
    cls = type(tokenizer)
    params = getattr(tokenizer, "params", None)
    meta = {"class": f"{cls.__module__}.{cls.__qualname__}",
            "params": repr(params) if params is not None else None,
            **{k: repr(getattr(tokenizer, k, None))
               for k in ("sample_rate", "frame_rate", "codebook_size")}}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name, tensor in sorted(tokenizer.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_hash(utterances: Sequence[dict[str, Any]]) -> str:
    rows = sorted((str(u["id"]), str(u["audio_filepath"]), str(u.get("duration")))
                  for u in utterances)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


class TokenCache:
    """Read-only view of a finished cache folder: ``get(id) -> LongTensor[L]``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index = read_json(self.folder / INDEX)
        self.meta: dict[str, Any] = index["meta"]
        self.shards: list[str] = index["shards"]
        self.items: dict[str, list[int]] = index["items"]
        self.skipped: list[dict[str, Any]] = index.get("skipped", [])
        self._maps: dict[int, np.ndarray] = {}

    @property
    def tokenizer_hash(self) -> str:
        return self.meta["tokenizer_hash"]

    def ids(self) -> list[str]:
        return list(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.items

    def length(self, utt_id: str) -> int:
        return self.items[utt_id][2]

    def _shard(self, k: int) -> np.ndarray:
        if k not in self._maps:
            self._maps[k] = np.load(self.folder / self.shards[k], mmap_mode="r")
        return self._maps[k]

    def get(self, utt_id: str) -> torch.Tensor:
        """The codes ``[L]`` (long) of utterance ``utt_id``."""
        try:
            shard, offset, length = self.items[utt_id]
        except KeyError:
            raise ToolkitError(f"{self.folder}: no speech codes for utterance {utt_id!r}") from None
        return torch.from_numpy(self._shard(shard)[offset:offset + length].astype(np.int64))


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    atomic_write(path, write)


def _done_in(partial: Path) -> tuple[list[str], dict[str, list[int]], list[dict]]:
    """Shards an interrupted build finished: names, items, skipped entries."""
    shards, items, skipped = [], {}, []
    for meta in sorted(partial.glob("shard-*.json")):
        info = read_json(meta)
        k = len(shards)
        shards.append(info["file"])
        items.update({uid: [k, off, n] for uid, off, n in info["items"]})
        skipped += info["skipped"]
    return shards, items, skipped


def build_token_cache(tokenizer: SpeechTokenizer, utterances: Sequence[dict[str, Any]],
                      corpus_root: str | Path, cache_root: str | Path, batch_size: int = 16,
                      shard_size: int = 2048, max_seconds: float | None = None) -> TokenCache:
    """Encode every utterance (``id``, ``audio_filepath``) once -> :class:`TokenCache`.

    Reuses a finished cache of the same tokenizer and data; resumes an interrupted one.
    Files that cannot be read are listed in ``TokenCache.skipped`` and not encoded.
    """
    from rich.progress import Progress

    tok_hash, d_hash = tokenizer_hash(tokenizer), data_hash(utterances)
    folder = Path(cache_root) / f"{tok_hash[:16]}-{d_hash[:12]}"
    if (folder / INDEX).is_file():
        return TokenCache(folder)
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    shards, items, skipped = _done_in(partial)
    done = set(items) | {s["id"] for s in skipped}
    todo = sorted((u for u in utterances if str(u["id"]) not in done),
                  key=lambda u: float(u.get("duration") or 0))
    dtype = np.int16 if tokenizer.codebook_size <= np.iinfo(np.int16).max else np.int32
    was_training = tokenizer.training
    tokenizer.eval()
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("encoding speech codes", total=len(todo))
            for start in range(0, len(todo), shard_size):
                chunk = todo[start:start + shard_size]
                codes, rows, bad = _encode_chunk(tokenizer, chunk, Path(corpus_root), batch_size,
                                                 max_seconds, lambda n: progress.advance(task, n))
                name = f"shard-{len(shards):05d}"
                flat = np.concatenate(codes).astype(dtype) if codes else np.zeros(0, dtype)
                _save_npy(partial / f"{name}.npy", flat)
                write_json(partial / f"{name}.json", {"file": f"{name}.npy", "items": rows,
                                                      "skipped": bad})
                items.update({uid: [len(shards), off, n] for uid, off, n in rows})
                shards.append(f"{name}.npy")
                skipped += bad
    finally:
        tokenizer.train(was_training)
    meta = {"tokenizer_hash": tok_hash, "data_hash": d_hash, "dtype": np.dtype(dtype).name,
            "frame_rate": float(tokenizer.frame_rate), "codebook_size": tokenizer.codebook_size,
            "sample_rate": tokenizer.sample_rate}
    write_json(partial / INDEX, {"meta": meta, "shards": shards, "items": items,
                                 "skipped": skipped})
    if folder.exists():  # a concurrent build finished first
        shutil.rmtree(partial, ignore_errors=True)
    else:
        os.replace(partial, folder)
    return TokenCache(folder)


def _encode_chunk(tokenizer: SpeechTokenizer, chunk: Sequence[dict[str, Any]], root: Path,
                  batch_size: int, max_seconds: float | None, advance: Any
                  ) -> tuple[list[np.ndarray], list[list], list[dict]]:
    codes: list[np.ndarray] = []
    rows: list[list] = []
    bad: list[dict] = []
    offset = 0
    for start in range(0, len(chunk), batch_size):
        batch = chunk[start:start + batch_size]
        wavs, ids = [], []
        for u in batch:
            try:
                wavs.append(load_audio(root / u["audio_filepath"], tokenizer.sample_rate,
                                       max_seconds))
                ids.append(str(u["id"]))
            except AudioError as err:
                bad.append({"id": str(u["id"]), "reason": err.reason, "detail": str(err)})
        if wavs:
            padded = collate_audio([{"wav": w, "text": "", "speaker": "", "id": i}
                                    for w, i in zip(wavs, ids)])
            padded, lengths = padded["wav"], padded["lengths"]
            with torch.inference_mode():
                out, out_lengths = tokenizer.encode(padded, lengths)
            for uid, row, n in zip(ids, out.cpu(), out_lengths.tolist()):
                codes.append(row[:n].numpy())
                rows.append([uid, offset, int(n)])
                offset += int(n)
        advance(len(batch))
    return codes, rows, bad


__all__ = ["TokenCache", "build_token_cache", "tokenizer_hash", "data_hash"]
