"""Bad input to the commands that load a model: damaged exports, stage checkpoints and
components. Each case runs the command as a user does and asserts the exit status, that the
message is one line naming what and where, and that no output file is left behind. A case is
a copy of a small run folder (tests/evaluation/conftest.py) damaged in ``tmp_path``; add a case
for every new way a saved thing can be broken."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch

from toolkit.cli import main
from toolkit.errors import ToolkitError
from toolkit.io import load_tensors, save_tensors


def _helpers():
    """tests/evaluation/conftest.py as a module (pytest imports test files with importlib)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("evaluation_conftest_helpers",
                                                  Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A run with tokenizer, decoder, stage1, sft and a published export (never damaged:
    each test damages its own copy)."""
    from toolkit.loading import export_model, load_run
    from toolkit.run_folder import publish

    helpers = _helpers()
    root = tmp_path_factory.mktemp("bad_input")
    run = helpers.make_run(root, helpers.make_lm(root))
    export_model(load_run(run, "sft"), run / "export.partial")
    publish(run / "export.partial", run / "export", {"stage": "export"})
    return run


@pytest.fixture
def run(base_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_run, tmp_path / "run"))


def cli(capsys, *argv: str) -> tuple[int, list[str]]:
    """Run ``python -m toolkit ARGV``; returns the exit status and the lines on stderr."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def one_error_line(lines: list[str], *names: str) -> str:
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def chat_t2s(capsys, model: Path, tmp_path: Path, *extra: str) -> tuple[int, list[str], Path]:
    out = tmp_path / "answer.wav"
    code, lines = cli(capsys, "chat", model, "--text", "hi", "--out", out, "--max-new-tokens", "4", *extra)
    return code, lines, out


def test_damaged_export_is_an_error_not_the_sft_stage(run, tmp_path, capsys):
    truncate(run / "export" / "speech_lm.safetensors")
    code, lines, out = chat_t2s(capsys, run, tmp_path)
    assert code == 2 and not out.exists()
    one_error_line(lines, str(run / "export" / "speech_lm.safetensors"))
    code, lines = cli(capsys, "eval", run)
    assert code == 2 and not (run / "eval_report").exists()
    one_error_line(lines, "speech_lm.safetensors")


def test_unfinished_export_is_an_error(run, tmp_path, capsys):
    (run / "export" / "COMPLETE.json").unlink()
    code, lines, out = chat_t2s(capsys, run, tmp_path)
    assert code == 2 and not out.exists()
    one_error_line(lines, str(run / "export"), "COMPLETE.json")


def test_damaged_sft_without_export_is_an_error_not_stage1(run, tmp_path, capsys):
    shutil.rmtree(run / "export")
    truncate(run / "sft" / "model.safetensors")
    code, lines, out = chat_t2s(capsys, run, tmp_path)
    assert code == 2 and not out.exists()
    one_error_line(lines, str(run / "sft" / "model.safetensors"))
    code, lines = cli(capsys, "chat", run, "--text", "hi", "--mode", "t2t", "--stage", "sft")
    assert code == 2
    one_error_line(lines, str(run / "sft" / "model.safetensors"))


def test_garbled_sft_checkpoint_of_the_same_size_is_named(run, capsys):
    shutil.rmtree(run / "export")
    path = run / "sft" / "model.safetensors"
    path.write_bytes(bytes(range(256)) * (path.stat().st_size // 256) + b"\0" * (path.stat().st_size % 256))
    code, lines = cli(capsys, "chat", run, "--text", "hi", "--mode", "t2t")
    assert code == 2
    one_error_line(lines, str(path), "not a readable safetensors file")


def test_unfinished_sft_stage_is_an_error(run, capsys):
    shutil.rmtree(run / "export")
    (run / "sft").rename(run / "sft.partial")
    (run / "sft.partial" / "COMPLETE.json").unlink()
    code, lines = cli(capsys, "chat", run, "--text", "hi", "--mode", "t2t")
    assert code == 2
    one_error_line(lines, str(run / "sft.partial"), "did not finish")


def test_wrong_shape_names_file_tensor_expected_and_found(run, tmp_path, capsys):
    path = run / "export" / "speech_lm.safetensors"
    tensors = load_tensors(path)
    name = sorted(tensors)[0]
    expected = list(tensors[name].shape)
    tensors[name] = torch.zeros(3, 3)
    save_tensors(path, tensors)
    for model in (run / "export", run):
        code, lines, out = chat_t2s(capsys, model, tmp_path)
        assert code == 2 and not out.exists()
        one_error_line(lines, str(path), f"'{name}'", "[3, 3]", str(expected))


def test_wrong_dtype_of_a_component_tensor_is_named(run, capsys):
    path = run / "decoder" / "decoder.safetensors"
    tensors = load_tensors(path)
    name = next(k for k, v in sorted(tensors.items()) if v.is_floating_point())
    tensors[name] = tensors[name].to(torch.int64)
    save_tensors(path, tensors)
    code, lines = cli(capsys, "chat", run, "--text", "hi", "--mode", "t2t", "--stage", "sft")
    assert code == 2
    one_error_line(lines, str(path), f"'{name}'", "torch.int64", "torch.float32")


def test_damaged_decoder_stops_resynth_without_output(run, tmp_path, capsys):
    truncate(run / "decoder" / "decoder.safetensors")
    out = tmp_path / "resynth.wav"
    code, lines = cli(capsys, "resynth", run, "--audio", run / "corpus" / "audio" / "q0.wav", "--out", out)
    assert code == 2 and not out.exists() and not list(tmp_path.glob("*.tmp"))
    one_error_line(lines, str(run / "decoder" / "decoder.safetensors"))


def test_stage_export_on_a_run_folder_loads_its_export(run, tmp_path, capsys):
    code, lines, out = chat_t2s(capsys, run, tmp_path, "--stage", "export")
    assert code == 0, lines
    assert sf.info(str(out)).frames > 0
    shutil.rmtree(run / "export")
    code, lines = cli(capsys, "chat", run, "--text", "hi", "--mode", "t2t", "--stage", "export")
    assert code == 2
    line = one_error_line(lines, str(run / "export"), "export stage")
    assert "model.json" not in line


def test_unknown_stage_lists_the_choices(run, capsys):
    code, lines = cli(capsys, "chat", run, "--text", "hi", "--mode", "t2t", "--stage", "sfft")
    assert code == 2
    one_error_line(lines, "'sfft'", "export, sft, stage2, stage1, latest")


def test_explicit_latest_says_which_stage_it_used_and_why(run, capsys):
    args = ("chat", run, "--text", "hi", "--mode", "t2t", "--max-new-tokens", "4", "--stage", "latest")
    code, lines = cli(capsys, *args)
    assert code == 0
    assert [ln for ln in lines if ln.startswith("note:")] == lines and len(lines) == 1
    assert "-> export" in lines[0] and "newest" in lines[0]
    truncate(run / "export" / "speech_lm.safetensors")
    truncate(run / "sft" / "model.safetensors")
    code, lines = cli(capsys, *args)
    assert code == 0 and len(lines) == 1, lines
    assert lines[0].startswith("note: stage latest -> stage1")
    assert "speech_lm.safetensors" in lines[0] and str(run / "sft" / "model.safetensors") in lines[0]


def test_latest_with_nothing_loadable_is_one_line(run, capsys):
    for folder in ("export", "sft", "stage1"):
        for path in (run / folder).glob("*.safetensors"):
            truncate(path)
    code, lines = cli(capsys, "chat", run, "--text", "hi", "--mode", "t2t", "--stage", "latest")
    assert code == 2
    one_error_line(lines, "no stage could be loaded", "export (", "sft (", "stage1 (")


def test_resynth_of_a_long_input_reads_a_capped_voice_prompt(base_run):
    """resynth's default voice is the whole input: the prompt made of a 60 s input is the
    prompt of its first VOICE_PROMPT_SECONDS (its cost does not grow with the input)."""
    from toolkit.cli.commands.resynth import voice_prompt
    from toolkit.contracts import VOICE_PROMPT_SECONDS
    from toolkit.persist.components import load_trained

    tok, dec = load_trained(base_run, "tokenizer"), load_trained(base_run, "decoder")
    voice = 0.1 * torch.randn(60 * tok.sample_rate, generator=torch.Generator().manual_seed(0))
    prompt = voice_prompt(tok, dec, voice)
    assert 0 < prompt.mel.shape[0] <= VOICE_PROMPT_SECONDS * 100
    assert 0 < len(prompt.codes) <= VOICE_PROMPT_SECONDS * tok.frame_rate
    head = voice_prompt(tok, dec, voice[: int(VOICE_PROMPT_SECONDS * tok.sample_rate)])
    assert torch.equal(prompt.mel, head.mel) and torch.equal(prompt.codes, head.codes)


def test_library_load_raises_for_a_changed_file_its_marker_lists(run):
    from toolkit.loading import load

    path = run / "stage1" / "model.safetensors"
    size = path.stat().st_size  # the same tensors, saved again with metadata: the file
    save_tensors(path, load_tensors(path), metadata={"edited": "by hand"})  # reads, its size changed
    assert path.stat().st_size != size
    with pytest.raises(ToolkitError, match="bytes where COMPLETE.json lists"):
        load(run, "stage1")
