"""A tiny, untrained speech-to-speech system and a synthetic run folder built around it.

The trunk is a random 2-layer llama with a byte-level BPE vocabulary (the ``pretrain``
stage's own tokenizer code), split at -1; the speech tokenizer is ``mel_vq`` and the decoder
``flow_vocoder``, both small and untrained. Everything is built in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import toolkit
from toolkit.speech_lm.bundle import SpeechLM

QUESTIONS = [
    ("What is the capital of France?", "The capital of France is Paris.", "paris"),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", "tokyo"),
    ("Who wrote Hamlet?", "Hamlet was written by William Shakespeare.", "william shakespeare"),
]
CODEBOOK = 32
TRUNK_CONFIG = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
                "intermediate_size": 64, "max_position": 512, "tie_embeddings": True}
TOKENIZER_NODE = {"plugin": "mel_vq", "params": {"channels": 16, "layers": 2, "codebook_size": CODEBOOK,
                                                 "codebook_dim": 8, "kmeans_init": False}}
DECODER_NODE = {"plugin": "flow_vocoder", "params": {
    "codebook_size": CODEBOOK, "frame_rate": 25.0, "dim": 16, "flow_layers": 1, "token_layers": 1,
    "vocoder_dim": 16, "vocoder_layers": 1, "steps": 2, "chunk_tokens": 4, "context_tokens": 4}}


def make_trunk_folder(folder: Path, seed: int = 0) -> Path:
    """A random tiny llama trunk with a BPE text tokenizer, saved as a Hugging Face folder."""
    from toolkit.stages.pretrain import save_tokenizer, train_bpe

    texts = [f"{q} {a}" for q, a, _ in QUESTIONS] * 4
    tok = train_bpe(texts, 320)
    config = {**TRUNK_CONFIG, "vocab_size": tok.get_vocab_size(),
              "eos_token_id": tok.token_to_id("<|im_end|>"),
              "pad_token_id": tok.token_to_id("<|endoftext|>"), "bos_token_id": None}
    trunk = toolkit.build("trunk", "llama", config=config, seed=seed)
    trunk.save_pretrained(folder)
    save_tokenizer(tok, folder)
    return folder


def make_lm(root: Path, seed: int = 0) -> SpeechLM:
    """The tiny system: split model, trunk, speech tokenizer, decoder."""
    folder = make_trunk_folder(root / "trunk_src", seed)
    trunk_node = {"plugin": "llama", "params": {"checkpoint": str(folder)}}
    splitter_node = {"plugin": "layer_split", "params": {"split_at": -1, "codebook_size": CODEBOOK}}
    trunk = toolkit.build("trunk", "llama", checkpoint=str(folder))
    split = toolkit.build("splitter", "layer_split", trunk=trunk, split_at=-1,
                          codebook_size=CODEBOOK, seed=seed)
    torch.manual_seed(seed)
    tokenizer = toolkit.build("tokenizer", TOKENIZER_NODE["plugin"], **TOKENIZER_NODE["params"])
    decoder = toolkit.build("decoder", DECODER_NODE["plugin"], **DECODER_NODE["params"])
    nodes = {"trunk": trunk_node, "splitter": splitter_node, "tokenizer": TOKENIZER_NODE,
             "decoder": DECODER_NODE}
    return SpeechLM(split.eval(), trunk.eval(), tokenizer.eval(), decoder.eval(), nodes, "test")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> SpeechLM:
    return make_lm(tmp_path_factory.mktemp("tiny_lm"))


def _publish(folder: Path, name: str) -> None:
    from toolkit.run_folder import publish

    publish(folder.parent / f"{name}.partial", folder, {"stage": name})


def make_run(root: Path, lm: SpeechLM, sft_perturb: float = 0.01) -> Path:
    """A run folder as the stages leave it: recipe, corpus (espeak questions), tokenizer and
    decoder stages, stage1 (speech side) and sft (full, text side nudged) models."""
    import yaml

    from toolkit.data.audio import save_audio
    from toolkit.data.manifest import write_manifest
    from toolkit.data.synth import Voice, synthesize
    from toolkit.persist.split_model import save_split_model
    from toolkit.persist.components import save_component

    run = root / "run"
    corpus = run / "corpus.partial"
    voice = Voice("en-us", 170, 50)
    utts, qa = [], []
    for i, (q, a, key) in enumerate(QUESTIONS + QUESTIONS[:1]):
        split = "test" if i < 2 else "text_only"
        path = f"audio/q{i}.wav"
        save_audio(corpus / path, synthesize(q, voice), 16000)
        utts.append({"id": f"q{i}-q", "audio_filepath": path, "text": q, "split": split,
                     "task": "question", "speaker": voice.name, "duration": 1.0})
        qa.append({"id": f"q{i}", "split": split, "domain": "x", "question": q, "answer": a,
                   "key": key, "aliases": [], "question_utt": f"q{i}-q", "answer_utt": None})
    save_audio(corpus / "audio/s0.wav", synthesize("The sun is bright today.", voice), 16000)
    utts.append({"id": "s0", "audio_filepath": "audio/s0.wav", "text": "The sun is bright today.",
                 "split": "test", "task": "sentence", "speaker": voice.name, "duration": 1.0})
    for i, (text, name) in enumerate((("Can you say Paris again?", "Paris"),
                                      ("The card in my hand says Tokyo.", "Tokyo"))):
        save_audio(corpus / f"audio/e{i}.wav", synthesize(text, voice), 16000)
        utts.append({"id": f"e{i}", "audio_filepath": f"audio/e{i}.wav", "text": text, "entity": name,
                     "split": "test", "task": "entity", "speaker": voice.name, "duration": 1.0})
    write_manifest(corpus / "dialogues.jsonl", [
        {"id": f"d{m}", "split": "train", "mode": m, "turns": [
            {"role": "system", "text": f"Answer in {m}.", "utt": None},
            {"role": "user", "text": "Hi.", "utt": None}, {"role": "assistant", "text": "Hello.", "utt": None}]}
        for m in ("s2s", "s2t", "t2s", "t2t")])
    write_manifest(corpus / "utterances.jsonl", utts)
    write_manifest(corpus / "qa.jsonl", qa)
    _publish(run / "corpus", "corpus")
    recipe = {"name": "tiny-eval-test", "out": str(run), "seed": 0, **lm.nodes,
              "stages": ["corpus", "tokenizer", "decoder", "stage1", "sft", "eval", "export"]}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    for key, part in (("tokenizer", lm.tokenizer), ("decoder", lm.decoder)):
        cls = toolkit.registry.load(key, lm.nodes[key]["plugin"])
        params = cls.Params(**lm.nodes[key]["params"])
        save_component(run / f"{key}.partial", key, lm.nodes[key]["plugin"], params, part, {})
        _publish(run / key, key)
    save_split_model(lm.model, run / "stage1.partial", stage="stage1", contents="speech_side",
                     trunk_node=lm.nodes["trunk"], splitter_node=lm.nodes["splitter"])
    _publish(run / "stage1", "stage1")
    with torch.no_grad():  # sft changes the text side: retention must see a different model
        for p in lm.model.shared.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * sft_perturb)
    save_split_model(lm.model, run / "sft.partial", stage="sft", contents="full",
                     trunk_node=lm.nodes["trunk"], splitter_node=lm.nodes["splitter"])
    _publish(run / "sft", "sft")
    return run


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from toolkit.evaluation import Judge
    from toolkit.evaluation.run import EvalParams, evaluate
    from toolkit.loading import load_run

    root = tmp_path_factory.mktemp("eval_run")
    run = make_run(root, make_lm(root))
    params = EvalParams(max_questions=2, max_new_tokens=12, min_new_tokens=8, text_max_new_tokens=8,
                        retention_questions=2, perplexity_texts=4, resynthesis_utterances=1,
                        latency_answers=1, examples=1)
    report = evaluate(load_run(run), run, root / "report", params, judge=Judge())
    return run, root / "report", report
