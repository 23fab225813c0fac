"""recipes/moss_tiny.yaml end to end, as a user runs it: every stage, the report, the export,
and a re-run that resumes (skips what is complete, redoes what is not)."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

import toolkit

ROOT = Path(__file__).resolve().parents[2]
MODES = ("s2s", "s2t", "t2s", "t2t")


def lightning_run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["lightning", "run", str(ROOT / "recipes/moss_tiny.yaml"), f"out={out}",
                           *extra], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("moss_tiny") / "run"
    done = lightning_run(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.models
def test_every_stage_completes_and_reports(run_dir: Path) -> None:
    from toolkit.recipe import load_recipe
    from toolkit.runner import is_complete

    stages = load_recipe(ROOT / "recipes/moss_tiny.yaml")["stages"]
    assert all(is_complete(run_dir / s) for s in stages), [s for s in stages if not is_complete(run_dir / s)]
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    for split in ("test", "text_only"):
        assert set(report["accuracy"][split]) == set(MODES)
        assert all(0.0 <= report["accuracy"][split][m] <= 1.0 for m in MODES)
    assert report["accuracy_n"] == {"test": 4, "text_only": 4}
    for stage in ("stage1", "stage2", "sft"):  # the ladder runs on every LM stage
        for rung in ("hearing", "speaking"):
            entry = report["ladder"][stage][rung]
            assert entry["n"] == 4 and 0 <= entry["entity_rate"] <= 1 and entry["wer"] >= 0
    assert report["ladder_ceiling"]["hearing"]["n"] == 4
    retention = report["retention"]
    assert retention["stage1"]["perplexity"] == retention["original"]["perplexity"]  # frozen text side
    assert (run_dir / "eval" / "report.md").read_text().startswith("# Evaluation")
    assert any((run_dir / "eval" / "examples").glob("*.wav"))


@pytest.mark.models
def test_export_loads_with_the_trained_weights(run_dir: Path) -> None:
    from toolkit.io import load_tensors

    lm = toolkit.load(run_dir / "export")
    trained = load_tensors(run_dir / "sft" / "model.safetensors")
    state = lm.model.state_dict()
    for name, tensor in trained.items():
        assert torch.equal(state[name].to(tensor.dtype), tensor), name


@pytest.mark.models
def test_rerun_skips_complete_stages_and_redoes_an_incomplete_one(run_dir: Path) -> None:
    (run_dir / "export" / "COMPLETE.json").unlink()
    again = lightning_run(run_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("complete, skipped") == 8
    assert "export: done" in again.stderr


@pytest.mark.models
def test_decoder_reads_the_trained_tokenizers_code_vectors(run_dir: Path) -> None:
    """The decoder stage hands the tokenizer's codebook to the decoder (standardised per dim)."""
    from toolkit.stages.decoder import load_trained as load_decoder
    from toolkit.stages.tokenizer import load_trained as load_tokenizer

    tokenizer, decoder = load_tokenizer(run_dir), load_decoder(run_dir)
    vectors = tokenizer.code_vectors()
    assert decoder.params.code_dim == vectors.shape[1]
    expected = (vectors - vectors.mean(0)) / vectors.std(0).clamp(min=1e-6)
    torch.testing.assert_close(decoder.code_vectors[: tokenizer.codebook_size], expected)
