"""A quiet terminal during a stage: Lightning's tips, info lines and warnings go to the stage's
log file instead of the screen; the toolkit's own lines and one progress bar per stage stay.

Lightning prints, for every Trainer, a "try installing litlogger" tip, "GPU available: ..."
lines, "You defined a `validation_step` but have no `val_dataloader`" and deprecation warnings
from its own modules: none of them is the user's business in a recipe run, but all are kept in
``<stage>/stage.log`` for whoever debugs one. Warnings raised from other code (the toolkit, a
plugin, the user's) still reach the terminal.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric",
                     "lightning_fabric", "pytorch_lightning")


def _library_dirs() -> tuple[str, ...]:
    import lightning
    import torch

    return tuple(os.path.dirname(m.__file__) + os.sep for m in (lightning, torch))


@contextmanager
def stage_log(path: str | Path) -> Iterator[None]:
    """Within the block, send Lightning's log records and the warnings raised in Lightning's or
    PyTorch's own files to ``path`` (appended)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    saved = []
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [handler], False
    libraries = _library_dirs()
    show = warnings.showwarning

    def route(message: Any, category: type, filename: str, lineno: int,
              file: Any = None, line: str | None = None) -> None:
        if str(filename).startswith(libraries):
            handler.stream.write(f"warning {category.__name__} at {filename}:{lineno}: {message}\n")
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = route
    try:
        yield
    finally:
        warnings.showwarning = show
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()
