"""CONTRIBUTING.md's example plugin, pip-installed as a reader would, runs through a real recipe:
the ``corpus`` stage (a tiny spoken_qa corpus), the ``tokenizer`` stage (which saves it as built:
it has nothing to train) and the ``decoder`` stage (which encodes the corpus with it and trains a
tiny decoder on its codes). The saved tokenizer loads back and encodes the corpus's audio."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

RECIPE = """\
seed: 0
data:
  plugin: spoken_qa
  params: {num_facts: 4, num_sentences: 4, num_dialogues: 1, num_speakers: 2,
           held_out_speakers: 1, entity_voices: 1}
tokenizer: {plugin: energy, params: {levels: 8}}
decoder:
  plugin: flow_vocoder
  params: {dim: 32, flow_layers: 1, vocoder_dim: 32, vocoder_layers: 1, steps: 1}
stages: [corpus, tokenizer, decoder]
stage_args:
  decoder: {max_steps: 2, batch_seconds: 8}
trainer: {accelerator: cpu, devices: 1, precision: 32-true}
"""



def test_example_plugin_runs_through_a_recipe(plugin_site: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.data.audio import load_audio
    from toolkit.persist.components import load_trained
    from toolkit.runner import run_recipe

    monkeypatch.syspath_prepend(str(plugin_site))  # its entry point is found from here on
    recipe = tmp_path / "energy.yaml"
    recipe.write_text(RECIPE + f"out: {tmp_path / 'run'}\n")
    run = run_recipe(recipe)

    saved = json.loads((run / "tokenizer/tokenizer.json").read_text())
    assert saved["plugin"] == "energy" and saved["metrics"] == {"trained": False}
    tok = load_trained(run, "tokenizer")
    assert type(tok).__name__ == "EnergyTokenizer" and tok.codebook_size == 8
    decoder = load_trained(run, "decoder")  # built for the energy codes, trained on them
    assert decoder.frame_rate == tok.frame_rate

    rows = [json.loads(line) for line in (run / "corpus/utterances.jsonl").read_text().splitlines()]
    assert len(rows) >= 4
    seen = set()
    for row in rows[:4]:
        wav = load_audio(run / "corpus" / row["audio_filepath"], tok.sample_rate)
        codes, lengths = tok.encode(wav[None], torch.tensor([len(wav)]))
        assert codes.shape[1] == int(lengths[0]) == len(wav) // tok.hop > 0
        assert 0 <= int(codes.min()) and int(codes.max()) < tok.codebook_size
        stream = tok.stream_encoder()
        pieces = [stream.push(chunk) for chunk in wav.split(3001)] + [stream.flush()]
        assert torch.equal(torch.cat(pieces), codes[0])  # streaming equals offline
        seen |= set(codes[0].tolist())
    assert len(seen) > 2  # speech and silence give different loudness codes


def test_params_checks_run_in_validate(plugin_site: Path, tmp_path: Path) -> None:
    """The guide's promise: ``__post_init__`` range checks are what ``validate`` sees."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("tokenizer: {plugin: energy, params: {levels: 8}}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(plugin_site), os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-m", "toolkit", "validate", str(recipe),
                          "tokenizer.params.levels=1"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    assert out.stderr == "error: energy tokenizer: levels must be >= 2, got 1\n"
