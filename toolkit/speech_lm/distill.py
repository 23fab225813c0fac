"""Cross-modal self-distillation: after a spoken question, the model's next-token distributions
over the answer should be the ones it has after the same question written.

An example pairs a *student* conversation (the user turn spoken) with a *teacher* one (the
same turn written); both end in the same written assistant answer. The teacher is the model
itself reading text, run without gradients; in stage I its text side is frozen, so it is
exactly the pretrained trunk. The loss is ``KL(teacher || student)`` over the text vocabulary
at every answer target, next to the usual cross-entropy on the answer: a dense signal at the
very positions where a name that was not heard makes the answer go wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.contracts import TextTokenizer
from toolkit.errors import ToolkitError
from toolkit.speech_lm.layout import TEXT, SpecialTokens
from toolkit.speech_lm.sequences import Turn, build_conversation


def distillation_example(student: Sequence[Turn], teacher: Sequence[Turn], tok: TextTokenizer,
                         tokens: SpecialTokens) -> dict[str, Tensor]:
    """A training example of ``student`` (targets: its assistant turns) carrying the teacher's
    grid: ``teacher_ids[Lt,2]``, and ``distill_mask[L]`` / ``teacher_mask[Lt]`` marking the
    answer targets of each, which line up one to one."""
    example = build_conversation(student, tok, tokens)
    taught = build_conversation(teacher, tok, tokens)
    mine, theirs = example["target_modality"] == TEXT, taught["target_modality"] == TEXT
    if not torch.equal(example["labels"][mine], taught["labels"][theirs]):
        raise ToolkitError("a distillation pair's student and teacher must end in the same written answer")
    return {**example, "distill_mask": mine, "teacher_ids": taught["input_ids"], "teacher_mask": theirs}


def distillation_loss(model: nn.Module, batch: dict[str, Tensor], student_hidden: Tensor) -> Tensor:
    """Mean ``KL(teacher || student)`` per distilled position.

    ``student_hidden[B,L,D]``: the text branch's normed states of ``batch["input_ids"]``;
    ``batch`` holds ``teacher_ids[B,Lt,2]``, ``teacher_mask[B,Lt]`` and ``distill_mask[B,L]``."""
    with torch.no_grad():
        taught = model.forward_hidden(batch["teacher_ids"], ("text",))["text"]
        target = F.log_softmax(model.head("text", taught[batch["teacher_mask"]]).float(), -1)
    logits = model.head("text", student_hidden[batch["distill_mask"]]).float()
    if logits.shape[0] == 0:
        return logits.sum()
    return F.kl_div(F.log_softmax(logits, -1), target, log_target=True, reduction="batchmean")


__all__ = ["distillation_example", "distillation_loss"]
