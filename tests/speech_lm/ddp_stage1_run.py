"""A short stage-I run on a tiny trunk, for the multi-process test (Lightning's DDP launcher
re-runs this script once per extra rank). Usage: ddp_stage1_run.py WORK_DIR DEVICES BATCH_TOKENS"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from speech_lm_helpers import synthetic_codes, tiny_split  # noqa: E402
from toolkit.speech_lm import data  # noqa: E402
from toolkit.speech_lm.module import OptimConfig, SplitLMModule  # noqa: E402
from toolkit.stages.shared import lm_trainer_kwargs  # noqa: E402
from toolkit.training import fit  # noqa: E402

STEPS = 24


def main(work_dir: str, devices: int, batch_tokens: int) -> None:
    torch.manual_seed(0)
    _, model = tiny_split()
    codes = synthetic_codes(48)
    utts = [{"id": k, "text": f"utterance {i}", "split": "train"} for i, k in enumerate(codes)]
    examples = data.pretraining_examples(utts, codes.__getitem__, model.text_tokenizer, model.tokens,
                                         {"continuation": 0.6, "asr": 0.2, "tts": 0.2}, 0,
                                         text_targets="after_speech")
    loader = data.make_loader(examples, model.tokens, batch_tokens, seed=0,
                              pad_text_id=model.text_tokenizer.pad_id)
    module = SplitLMModule(model, OptimConfig(lr=3e-3, warmup=3, max_steps=STEPS), ("speech",))
    trainer = {"accelerator": "cpu", "devices": devices, "enable_progress_bar": False,
               "log_every_n_steps": 1}
    if devices > 1:
        trainer["strategy"] = "ddp"
    fit(module, loader, work_dir, lm_trainer_kwargs(trainer), max_steps=STEPS)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
