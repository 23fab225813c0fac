"""``export``: the trained model as one folder that ``toolkit.load``, ``chat`` and ``eval`` read."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.stages import StageContext, stage


@dataclass
class ExportParams:
    stage: str | None = None
    """LM stage to export (default: the latest of sft, stage2, stage1)."""


@stage("export", params=ExportParams)
def run_export(ctx: StageContext) -> None:
    """Export the model (split model, trunk + text tokenizer, speech tokenizer, decoder) as one folder."""
    from toolkit.loading import export_model, load_run

    lm = load_run(ctx.run_dir, ctx.params.stage)
    export_model(lm, ctx.work_dir)
