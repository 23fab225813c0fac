"""``eval``: the run's evaluation report (``report.json``, ``report.md``, plots, examples)."""

from __future__ import annotations

from toolkit.evaluation.run import EvalParams
from toolkit.stages import StageContext, stage


@stage("eval", params=EvalParams, needs=("corpus",))
def run_eval(ctx: StageContext) -> None:
    """Evaluate: spoken QA in four modes, text retention, resynthesis WER, latency, baselines."""
    from rich.console import Console

    from toolkit.evaluation.report import MODE_NAMES
    from toolkit.evaluation.run import evaluate
    from toolkit.loading import load_run

    lm = load_run(ctx.run_dir)
    report = evaluate(lm, ctx.run_dir, ctx.work_dir, ctx.params)
    console = Console(stderr=True)
    for split, modes in report["accuracy"].items():
        cells = "  ".join(f"{MODE_NAMES[m]} {'-' if v is None else f'{100 * v:.0f}%'}" for m, v in modes.items())
        console.print(f"  accuracy {split}: {cells}")
    for name, entry in report["ladder"].items():
        if "hearing" in entry:
            h, s = entry["hearing"], entry["speaking"]
            read = entry.get("speaking_phonemes")
            console.print(f"  {name}: hearing {100 * h['entity_rate']:.0f}% of names (WER {h['wer']:.2f}), "
                          f"speaking {100 * s['entity_rate']:.0f}% (WER {s['wer']:.2f})"
                          + (f", phoneme head {100 * read['entity_closest']:.0f}% (PER {read['per']:.2f})"
                             if read else ""))
    ceiling = report["ladder_ceiling"]
    if "hearing" in ceiling:
        console.print(f"  ceilings: judge hears {100 * ceiling['hearing']['entity_rate']:.0f}% of names, "
                      f"resynthesis keeps {100 * ceiling['speaking']['entity_rate']:.0f}%")
    console.print(f"  report: {ctx.run_dir / ctx.name / 'report.md'}")
