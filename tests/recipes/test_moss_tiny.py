"""recipes/moss_tiny.yaml end to end, as a user runs it: every stage, the report, the export,
a re-run that resumes (skips what is complete, redoes what is not), a quiet terminal, a run
stopped by SIGTERM that resumes to the same report, and ``trainer.max_steps`` honoured."""

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import toolkit
from toolkit.machine import cpu_kind

ROOT = Path(__file__).resolve().parents[2]
MODES = ("s2s", "s2t", "t2s", "t2t")


def lightning_run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["lightning", "run", str(ROOT / "recipes/moss_tiny.yaml"), f"out={out}",
                           *extra], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("moss_tiny") / "run"
    done = lightning_run(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


@pytest.fixture(scope="module")
def run_dir(first_run: tuple[Path, subprocess.CompletedProcess]) -> Path:
    return first_run[0]


def copy_stages(run_dir: Path, out: Path, stages: tuple[str, ...]) -> None:
    out.mkdir(parents=True)
    for name in stages:
        shutil.copytree(run_dir / name, out / name)


def comparable(report):
    """A report without what differs between two identical runs: wall-clock measures (latency,
    seconds, real-time factors) and the run folder's path; other numbers to 5 significant digits.

    A resumed stage's weights can differ from an uninterrupted one's in the last fp32 bits
    (the order of float sums is not fixed across a reload on every CPU): on a Xeon with AMX the
    resumed SFT perplexity was 16.8992852 against 16.8992857, a relative 3e-8. Five digits leave
    a margin of 300x over that while any real change of the run (one step more or less, other
    data) moves a perplexity in its second or third digit; counts, texts and accuracies over
    a handful of questions still compare exactly."""
    if isinstance(report, dict):
        return {k: comparable(v) for k, v in report.items()
                if not re.search(r"latency|seconds|rtf|_ms|time|source", k)}
    if isinstance(report, list):
        return [comparable(v) for v in report]
    if isinstance(report, float):
        return float(f"{report:.5g}")
    return report


@pytest.mark.models
def test_every_stage_completes_and_reports(run_dir: Path) -> None:
    from toolkit.recipe import load_recipe
    from toolkit.run_folder import is_complete

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
    # whisper_vq's phoneme head reads what each stage said without the decoder, and the own codes
    read = [report["ladder"][s]["speaking_phonemes"] for s in ("stage1", "stage2", "sft")]
    read.append(report["ladder_ceiling"]["speaking_phonemes"])
    assert all(r["n"] == 4 and 0 <= r["entity_closest"] <= 1 and r["per"] >= 0 for r in read)
    for split in ("test", "text_only"):  # and each spoken QA answer, next to the right answer's own codes
        assert set(report["accuracy_phonemes"][split]) == {"s2s", "t2s"}
        assert all(e["n"] == 4 and 0 <= e["key_said"] <= 1 and 0 <= e["key_closest"] <= 1
                   for e in report["accuracy_phonemes"][split].values())
        top = report["answer_ceiling"][split]
        assert top["n"] == 4 and all(0 <= top[k] <= 1 for k in ("judge", "key_said", "key_closest"))
    warmup = json.loads((run_dir / "stage2" / "speaking_warmup.json").read_text())
    assert warmup["steps"] == 20 and 0 < warmup["word_by_word"] <= warmup["utterances"]
    assert warmup["words_alone"] and warmup["examples"] > warmup["utterances"]  # a placed sentence: one per word
    assert warmup["at"] == "end"  # after the stage's LM steps, so they cannot overwrite it
    assert warmup["vocabulary_strings"] == 6 and warmup["vocabulary_examples"] > 6  # cut into words said alone
    retention = report["retention"]
    assert retention["stage1"]["perplexity"] == retention["original"]["perplexity"]  # frozen text side
    assert (run_dir / "eval" / "report.md").read_text().startswith("# Evaluation")
    assert any((run_dir / "eval" / "examples").glob("*.wav"))
    timings = json.loads((run_dir / "timings.json").read_text())   # a profile a later estimate can use
    assert set(timings["stages"]) == set(stages) and timings["cpu_kind"] == cpu_kind()
    assert timings["gflops"] > 0 and timings["stages"]["stage1"]["steps"] > 0


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
    from toolkit.persist.components import load_trained

    tokenizer, decoder = load_trained(run_dir, "tokenizer"), load_trained(run_dir, "decoder")
    vectors = tokenizer.code_vectors()
    assert decoder.params.code_dim == vectors.shape[1]
    expected = (vectors - vectors.mean(0)) / vectors.std(0).clamp(min=1e-6)
    torch.testing.assert_close(decoder.code_vectors[: tokenizer.codebook_size], expected)


@pytest.mark.models
def test_terminal_shows_only_the_toolkits_lines(first_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    run_dir, done = first_run
    text = done.stdout + done.stderr
    for noise in ("litlogger", "Tip:", "val_dataloader", "deprecated", "Epoch 0/", "GPU available"):
        assert noise not in text, noise
    assert "precision 32-true" in text and "whole job ~" in text and "stages run:" in text
    assert "litlogger" in (run_dir / "stage1" / "stage.log").read_text()  # kept for debugging


@pytest.mark.models
def test_sigterm_stops_the_run_and_the_same_command_resumes_it(run_dir: Path, tmp_path: Path) -> None:
    # stopped in sft, the last LM stage: what resumes is a stage's training checkpoint as in
    # stage1, and the stages after it are fewer to redo (the suite's time)
    out = tmp_path / "run"
    copy_stages(run_dir, out, ("corpus", "pretrain", "tokenizer", "stage1", "stage2"))
    cmd = ["lightning", "run", str(ROOT / "recipes/moss_tiny.yaml"), f"out={out}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = out / "sft.partial" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600
    while not checkpoint.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(r"stopped during stage sft at step \d+ \(SIGTERM\); "
                        r"run the same command to resume", last), last
    assert checkpoint.is_file() and not (out / "sft").exists()
    again = lightning_run(out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "corpus: complete, skipped" in again.stderr
    resumed = json.loads((out / "eval" / "report.json").read_text())
    straight = json.loads((run_dir / "eval" / "report.json").read_text())
    assert comparable(resumed) == comparable(straight)


@pytest.mark.models
def test_trainer_max_steps_changes_the_number_of_steps(run_dir: Path, tmp_path: Path) -> None:
    from toolkit.training import load_state

    out = tmp_path / "run"
    copy_stages(run_dir, out, ("corpus",))
    done = lightning_run(out, "trainer.max_steps=3", "--only", "corpus", "--only", "pretrain")
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_state(out / "pretrain" / "checkpoints" / "last.ckpt")
    assert state["global_step"] == 3
