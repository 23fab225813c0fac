"""Cross-modal self-distillation: pairs line up answer for answer, the loss is the KL of the
teacher's (text question) distributions to the student's (spoken question), only the speech
side learns from it in stage I, and batches carry the teacher grids."""

import torch
import torch.nn.functional as F

from speech_lm_helpers import tiny_split
from toolkit.speech_lm.data import collate, distillation_examples
from toolkit.speech_lm.loss import split_lm_losses
from toolkit.speech_lm.module import set_trainable

UTTS = [{"id": "q1", "split": "train", "task": "question", "qa": "a1", "text": "Capital of Peru?"},
        {"id": "q2", "split": "train", "task": "question", "qa": "a2", "text": "Who wrote Emma?"},
        {"id": "q3", "split": "test", "task": "question", "qa": "a3", "text": "Held out?"}]
QA = [{"id": "a1", "answer": "Lima."}, {"id": "a2", "answer": "Jane Austen."}, {"id": "a3", "answer": "No."}]
CODES = {"q1": torch.tensor([1, 2, 3, 4]), "q2": torch.tensor([5, 6, 7]), "q3": torch.tensor([8])}


def pairs(model):
    return distillation_examples(UTTS, QA, CODES.__getitem__, model.text_tokenizer, model.tokens,
                                 {"s2t": "Listen.", "t2t": "Read."})


def test_pairs_of_training_questions_line_up_answer_for_answer() -> None:
    _, model = tiny_split()
    examples = pairs(model)
    assert len(examples) == 2  # the test question is never a pair
    for e in examples:
        student = e["labels"][e["distill_mask"]]
        assert e["distill_mask"].sum() == e["teacher_mask"].sum() > 0
        assert model.text_tokenizer.decode(student.tolist()).startswith(("Lima.", "Jane Austen."))
        assert (e["input_ids"][:, 0] == model.tokens.modality_pad).any()      # the student hears
        assert not (e["teacher_ids"][:, 0] == model.tokens.modality_pad).any()  # the teacher reads


def test_loss_is_the_teachers_kl_and_reaches_only_the_speech_side() -> None:
    torch.manual_seed(0)
    _, model = tiny_split()
    set_trainable(model, ("speech",))
    examples = pairs(model)
    batch = collate(examples, model.tokens, pad_text_id=252)
    plain = split_lm_losses(model, batch)
    losses = split_lm_losses(model, batch, distill_weight=0.5)
    # reference from the definition, one example at a time, from full logits
    kls = []
    for e in examples:
        s = model(e["input_ids"][None]).text_logits[0][e["distill_mask"]].float()
        t = model(e["teacher_ids"][None]).text_logits[0][e["teacher_mask"]].float()
        kls.append(F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="sum"))
    expected = sum(kls) / sum(int(e["distill_mask"].sum()) for e in examples)
    torch.testing.assert_close(losses["distill_loss"], expected.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["loss"], plain["loss"] + 0.5 * expected.detach(), rtol=1e-4, atol=1e-5)
    losses["loss"].backward()
    assert model.speech_embed.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.embed_tokens.parameters())


def test_batches_without_pairs_carry_no_teacher() -> None:
    _, model = tiny_split()
    from toolkit.speech_lm.sequences import pretraining_example

    plain = pretraining_example("asr", model.text_tokenizer, model.tokens, codes=CODES["q1"], text="x")
    assert "teacher_ids" not in collate([plain], model.tokens)
    mixed = collate([plain, *pairs(model)], model.tokens)
    assert mixed["teacher_ids"].shape[0] == 3 and not mixed["teacher_mask"][0].any()
