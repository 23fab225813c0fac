"""A run stopped by SIGTERM (a scheduler's preemption) or SIGINT (Ctrl-C) ends as a failure.

Lightning turns SIGTERM into ``SystemExit(None)``, i.e. exit status 0, after the current step, and
Ctrl-C into ``SystemExit(1)``; a scheduler that requeues failed jobs would record the first as
done. Here both become :class:`Stopped`, which the command line prints as one line and turns
into exit status 128 + the signal number (143 for SIGTERM, 130 for SIGINT). The stage's
``.partial`` folder and its checkpoints stay, so running the same command resumes.

During training Lightning's own SIGTERM handler stops at the next step boundary (where a
checkpoint is written, see :class:`toolkit.training.fit.PeriodicCheckpoint`); elsewhere (data
preparation, encoding, evaluation) the handler installed by :func:`stop_on_signals` stops at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lightning_has_it = False


class Stopped(BaseException):
    """The run was stopped by ``signum``; a BaseException so no ``except Exception`` swallows it."""

    def __init__(self, signum: int, stage: str = "", step: int | None = None) -> None:
        super().__init__(signum)
        self.signum, self.stage, self.step = signum, stage, step

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)

    def message(self) -> str:
        name = signal.Signals(self.signum).name
        where = f" during stage {self.stage}" if self.stage else ""
        at = f" at step {self.step}" if self.step is not None else ""
        return f"stopped{where}{at} ({name}); run the same command to resume"


def _on_sigterm(signum: int, frame: Any) -> None:
    if not _lightning_has_it:  # inside Trainer.fit, Lightning stops after the current step
        raise Stopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Stopped` (or lets Lightning stop at a step boundary)."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def lightning_handles_signals() -> Iterator[None]:
    """Mark a ``Trainer.fit`` call: SIGTERM is left to Lightning's step-boundary stop."""
    global _lightning_has_it
    before, _lightning_has_it = _lightning_has_it, True
    try:
        yield
    finally:
        _lightning_has_it = before


def as_stopped(exc: SystemExit, received_sigterm: bool, step: int) -> Stopped | None:
    """The :class:`Stopped` behind Lightning's ``SystemExit`` after a signal, or None when the
    exit had another cause."""
    if received_sigterm:
        return Stopped(signal.SIGTERM, step=step)
    if isinstance(exc.__context__, KeyboardInterrupt):
        return Stopped(signal.SIGINT, step=step)
    return None
