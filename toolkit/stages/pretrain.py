"""``pretrain``: train a small text trunk from scratch on the corpus's training text.

For recipes that have no pretrained LLM to start from (the tiny recipe, tests, CI). It learns a
byte-level BPE vocabulary with ChatML special tokens plus reserved ones (for ``sosp`` and
``modality_pad``), trains the recipe's trunk plugin from a random ``config`` as a causal LM on
facts, chats and sentences of the ``train`` and ``text_only`` splits (never ``val`` / ``test``),
and saves a Hugging Face folder ``pretrain/trunk`` that the recipe's trunk node then loads.

A real LLM knows facts from its pretraining; this small one stands in for it, so with
``world_knowledge`` the answer *statements* of the ``val`` and ``test`` facts ("The capital of
Japan is Tokyo.") are part of its text, as world knowledge. Their questions, chats and speech are
never seen by any stage, so evaluation still asks questions the model was never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.io import write_json
from toolkit.registry import build
from toolkit.stages import StageContext, stage

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|reserved_{i}|>" for i in range(4)]
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
                 "{{ message['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TRAIN_SPLITS = ("train", "text_only")


@dataclass
class PretrainParams:
    config: dict = field(default_factory=lambda: {
        "hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2,
        "intermediate_size": 384, "max_position": 1024, "tie_embeddings": True})
    """Architecture of the trunk (HF-style keys; vocabulary and special ids are filled in)."""
    vocab_size: int = 1024
    block_size: int = 128
    batch_size: int = 16
    max_steps: int = 300
    lr: float = 3e-3
    warmup: int = 30
    world_knowledge: bool = True
    """Include the answer statements of val/test facts (see the module docstring)."""


def chatml(user: str, assistant: str) -> str:
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"


def training_texts(corpus: Path, world_knowledge: bool = True) -> list[str]:
    """Chats of QA items and dialogues, plain texts and sentence transcripts of the training
    splits; with ``world_knowledge`` also the answer statements of the other facts."""
    from toolkit.io import read_jsonl

    qa = read_jsonl(corpus / "qa.jsonl")
    texts = [chatml(q["question"], q["answer"]) for q in qa if q["split"] in TRAIN_SPLITS]
    if world_knowledge:
        texts += [q["answer"] for q in qa if q["split"] not in TRAIN_SPLITS]
    for d in read_jsonl(corpus / "dialogues.jsonl"):
        if d["split"] in TRAIN_SPLITS:
            texts.append("".join(f"<|im_start|>{t['role']}\n{t['text']}<|im_end|>\n" for t in d["turns"]))
    texts += [t["text"] for t in read_jsonl(corpus / "text.jsonl") if t["split"] in TRAIN_SPLITS]
    texts += [u["text"] for u in read_jsonl(corpus / "utterances.jsonl")
              if u["split"] in TRAIN_SPLITS and u["task"] == "sentence"]
    return texts


def train_bpe(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` with :data:`SPECIALS` as its first ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Any, folder: Path) -> None:
    """Hugging Face tokenizer files: ``tokenizer.json`` and ``tokenizer_config.json``."""
    from toolkit.io import write_text

    write_text(folder / "tokenizer.json", tok.to_str())
    write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "chat_template": CHAT_TEMPLATE, "add_bos_token": False,
        "clean_up_tokenization_spaces": False})


@stage("pretrain", params=PretrainParams, needs=("corpus",))
def pretrain(ctx: StageContext) -> None:
    """Pretrain a small text trunk (BPE vocabulary + causal LM) on the corpus's training text."""
    from toolkit.training import fit
    from toolkit.training.text_lm import TextLMModule, block_loader, packed_blocks

    p = ctx.params
    texts = training_texts(ctx.output("corpus"), p.world_knowledge)
    tok = train_bpe(texts, p.vocab_size)
    end = tok.token_to_id("<|im_end|>")
    config = {**p.config, "vocab_size": tok.get_vocab_size(), "eos_token_id": end,
              "pad_token_id": tok.token_to_id("<|endoftext|>"), "bos_token_id": None}
    trunk = build("trunk", ctx.recipe["trunk"]["plugin"], config=config, seed=ctx.seed)
    docs = [tok.encode(t).ids for t in texts]
    blocks = packed_blocks(docs, p.block_size, tok.token_to_id("<|endoftext|>"))
    module = TextLMModule(trunk, p.lr, p.warmup, p.max_steps)
    fit(module, block_loader(blocks, p.batch_size, ctx.seed), ctx.work_dir,
        ctx.recipe.get("trainer"), max_steps=p.max_steps)
    folder = ctx.work_dir / "trunk"
    trunk.save_pretrained(folder)
    save_tokenizer(tok, folder)
    write_json(ctx.work_dir / "pretrain.json", {"documents": len(docs), "blocks": int(blocks.shape[0]),
                                                "vocab_size": tok.get_vocab_size(),
                                                "parameters": sum(t.numel() for t in trunk.parameters())})
