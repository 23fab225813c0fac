"""The tiny-trunk pretraining pieces: a deterministic vocabulary, the chat format, packing."""

import torch

import toolkit
from toolkit.stages.pretrain import SPECIALS, chatml, save_tokenizer, train_bpe
from toolkit.training.text_lm import packed_blocks

TEXTS = [chatml(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a in range(12) for b in range(5)]


def test_bpe_is_deterministic_and_reserves_special_ids() -> None:
    one, two = train_bpe(TEXTS, 300), train_bpe(TEXTS, 300)
    assert one.to_str() == two.to_str()
    assert [one.token_to_id(s) for s in SPECIALS] == list(range(len(SPECIALS)))
    ids = one.encode(TEXTS[7]).ids
    assert one.decode(ids, skip_special_tokens=False) == TEXTS[7]


def test_saved_tokenizer_chat_matches_training_format(tmp_path) -> None:
    tok = train_bpe(TEXTS, 300)
    config = {"vocab_size": tok.get_vocab_size(), "hidden_size": 32, "num_layers": 2,
              "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64,
              "eos_token_id": tok.token_to_id("<|im_end|>"), "pad_token_id": 0}
    trunk = toolkit.build("trunk", "llama", config=config)
    trunk.save_pretrained(tmp_path)
    save_tokenizer(tok, tmp_path)
    loaded = toolkit.build("trunk", "llama", checkpoint=str(tmp_path))
    text = loaded.text_tokenizer
    prompt = text.chat([{"role": "user", "content": "What is 3 plus 4?"}])
    assert text.decode(prompt, skip_special=False) + "3 plus 4 is 7.<|im_end|>\n" == chatml(
        "What is 3 plus 4?", "3 plus 4 is 7.")
    reserved = {tok.token_to_id(s) for s in SPECIALS if "reserved" in s}
    assert reserved <= set(loaded.config.reserved_token_ids)
    assert tok.token_to_id("<|im_end|>") in text.eos_ids


def test_packed_blocks_keep_order_and_separators() -> None:
    blocks = packed_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_size=3, separator=0)
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    assert blocks.dtype == torch.long
