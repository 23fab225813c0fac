"""Cost of the hearing CTC classifier: scoring only the real frames vs a zero-padded batch.

The hearing warm-up and the stage loss score every speech frame against the text vocabulary
(cosine, ``toolkit.speech_lm.hearing_ctc``). A batch of utterances padded to its longest is
partly padding; ``speech_log_probs`` scores the real frames only. Both arms compute the same
CTC loss and input gradient (tests/speech_lm/test_hearing_ctc.py checks it); this prints what
each costs, forward + backward, on batches shaped like the moss_full corpus (utterances of
0.8-6 s at 12.5 codes per second, distributed like the corpus's durations) in the same process.

    python benchmarks/hearing_ctc.py                    # warm-up vocabulary and the full one
    python benchmarks/hearing_ctc.py --vocab 5000 --steps 20
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from toolkit.speech_lm.hearing_ctc import frame_log_probs, speech_log_probs

PERCENTILES = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 100)
DURATIONS = (0.83, 1.56, 1.71, 1.84, 1.94, 2.05, 2.17, 2.32, 2.5, 2.8, 3.26, 4.11, 4.69, 5.92)
"""moss_full_hearing's 4,322 training utterances: their duration (seconds) at these percentiles."""


def batch(size: int, dim: int, frame_rate: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``inputs[B,L,D]`` and left-aligned ``is_speech[B,L]``, durations distributed like the
    corpus's: an interval between percentiles picked by its share, uniform within it."""
    shares = torch.tensor(PERCENTILES[1:], dtype=torch.float) - torch.tensor(PERCENTILES[:-1], dtype=torch.float)
    picks = torch.multinomial(shares, size, replacement=True, generator=gen)
    spans = torch.tensor(DURATIONS)
    seconds = spans[picks] + torch.rand(size, generator=gen) * (spans[picks + 1] - spans[picks])
    lengths = (seconds * frame_rate).long().clamp(min=2)
    length = int(lengths.max()) + 2
    is_speech = torch.arange(length)[None] < lengths[:, None]
    return torch.randn(size, length, dim, generator=gen), is_speech


def padded_log_probs(inputs: torch.Tensor, is_speech: torch.Tensor, table: torch.Tensor):
    """The reference: every row's frames zero-padded to the longest, all scored."""
    lengths = is_speech.sum(1)
    frames = inputs.new_zeros(inputs.shape[0], int(lengths.max()), inputs.shape[-1])
    for i in range(inputs.shape[0]):
        frames[i, : int(lengths[i])] = inputs[i][is_speech[i]]
    return frame_log_probs(frames, table).transpose(0, 1), lengths


def time_arm(arm, batches, table: torch.Tensor) -> float:
    """Mean seconds of forward + backward of the CTC loss over ``batches``."""
    start = time.perf_counter()
    for inputs, is_speech in batches:
        inputs = inputs.clone().requires_grad_(True)
        log_probs, lengths = arm(inputs, is_speech, table)
        target_lengths = (lengths // 3).clamp(min=1)
        targets = torch.randint(0, table.shape[0], (int(target_lengths.sum()),))
        F.ctc_loss(log_probs, targets, lengths, target_lengths, blank=table.shape[0], zero_infinity=True).backward()
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[5000, 49152],
                        help="classifier rows: ~5000 in the warm-up (transcript tokens + negatives), 49152 in a stage")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--frame-rate", type=float, default=12.5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    batches = [batch(args.batch, args.dim, args.frame_rate, gen) for _ in range(args.steps)]
    real = sum(int(s.sum()) for _, s in batches)
    padded = sum(int(s.sum(1).max()) * s.shape[0] for _, s in batches)
    print(f"{args.steps} batches of {args.batch}: {real / padded:.0%} of padded frames are real; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'vocab':>6} | {'padded ms':>9} | {'packed ms':>9} | {'speed-up':>8}")
    for vocab in args.vocab:
        table = torch.randn(vocab, args.dim, generator=gen)
        for arm in (padded_log_probs, speech_log_probs):  # warm the allocator and kernels
            time_arm(arm, batches[:1], table)
        slow = time_arm(padded_log_probs, batches, table)
        fast = time_arm(speech_log_probs, batches, table)
        print(f"{vocab:>6} | {slow * 1e3:>9.1f} | {fast * 1e3:>9.1f} | {slow / fast:>7.2f}x")


if __name__ == "__main__":
    main()
