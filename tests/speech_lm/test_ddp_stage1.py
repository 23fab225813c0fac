"""Stage I across two processes (CPU, gloo, Lightning DDP) learns like one process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "ddp_stage1_run.py"


def losses(work_dir: Path) -> list[float]:
    rows = list(csv.DictReader(open(work_dir / "logs" / "csv" / "metrics.csv")))
    return [float(r["train/speech_loss"]) for r in rows if r.get("train/speech_loss")]


def run(work_dir: Path, devices: int, batch_tokens: int) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(SCRIPT), str(work_dir), str(devices), str(batch_tokens)],
                   check=True, env=env, timeout=900, cwd=Path(__file__).parents[2])
    return losses(work_dir)


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_curve(tmp_path):
    one = run(tmp_path / "one", 1, 512)
    two = run(tmp_path / "two", 2, 256)  # same global batch: 2 ranks x 256 positions
    assert len(one) == len(two) >= 20
    head = lambda xs: sum(xs[:4]) / 4  # noqa: E731
    tail = lambda xs: sum(xs[-4:]) / 4  # noqa: E731
    # Same shape: both fall, by a similar factor, from a similar start.
    assert tail(one) < 0.8 * head(one) and tail(two) < 0.8 * head(two)
    assert abs(head(one) - head(two)) < 0.15 * head(one)
    assert abs(tail(one) / head(one) - tail(two) / head(two)) < 0.15
