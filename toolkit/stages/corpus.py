"""The ``corpus`` stage: build the recipe's ``data`` plugin into this stage's folder."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.contracts import SpeechDataset
from toolkit.errors import ToolkitError
from toolkit.io import write_json
from toolkit.stages import StageContext, stage


@dataclass
class CorpusParams:
    """The corpus stage has no knobs of its own: the ``data:`` plugin node holds them."""


@stage("corpus", params=CorpusParams)
def run_corpus(ctx: StageContext) -> None:
    """Prepare the recipe's dataset (manifests + audio) for later stages."""
    dataset = ctx.build("data")
    if not isinstance(dataset, SpeechDataset):
        raise ToolkitError(f"recipe error at data.plugin: {type(dataset).__name__} is not a "
                           f"SpeechDataset")
    paths = dataset.prepare(ctx.work_dir)
    write_json(ctx.work_dir / "manifests.json",
               {name: path.relative_to(ctx.work_dir).as_posix() if path.is_relative_to(ctx.work_dir)
                else str(path) for name, path in paths.items()})
