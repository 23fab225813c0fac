"""The ladder's part of the report: a table and a plot of hearing and speaking per LM stage,
against their ceilings (the judge on the original audio, and on its resynthesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.run_folder import LM_STAGES_IN_ORDER as LM_STAGES

RUNGS = ("hearing", "speaking")


def _measured(ladder: dict[str, Any]) -> list[str]:
    return [s for s in LM_STAGES if isinstance(ladder.get(s), dict) and "hearing" in ladder[s]]


def plot_ladder(ladder: dict[str, Any], ceiling: dict[str, Any], path: Path) -> Path | None:
    """Entity rate (left) and WER (right) of hearing and speaking across stages, ceilings
    dashed (and the decoder-free speaking reading where there is one); None when no stage was
    measured."""
    stages = _measured(ladder)
    if not stages or "hearing" not in ceiling:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, metric in zip(axes, ("entity_rate", "wer")):
        for rung, color in zip(RUNGS, ("tab:blue", "tab:orange")):
            values = [ladder[s][rung][metric] for s in stages]
            ax.plot(stages, [v if v is not None else float("nan") for v in values], "o-",
                    color=color, label=f"{rung} (LM)")
            top = ceiling[rung][metric]
            if top is not None:
                ax.axhline(top, color=color, linestyle="--", linewidth=1, label=f"{rung} ceiling")
        if "speaking_phonemes" in ceiling:  # decoder-free reading: closest name / PER
            read_metric = "entity_closest" if metric == "entity_rate" else "per"
            values = [(ladder[s].get("speaking_phonemes") or {}).get(read_metric, float("nan")) for s in stages]
            ax.plot(stages, values, "s:", color="tab:green",
                    label=f"speaking (phoneme head, {'closest name' if metric == 'entity_rate' else 'PER'})")
            ax.axhline(ceiling["speaking_phonemes"][read_metric], color="tab:green", linestyle="--",
                       linewidth=1, label="own codes (phoneme head)")
        ax.set_title("entity rate" if metric == "entity_rate" else "WER (phoneme head: PER)")
        if metric == "entity_rate":
            ax.set_ylim(0, 1)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _cell(entry: dict[str, Any]) -> str:
    rate, wer = entry.get("entity_rate"), entry.get("wer")
    return (f"{'-' if rate is None else f'{100 * rate:.1f}%'} / "
            f"{'-' if wer is None else f'{wer:.3f}'}")


def _phoneme_cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    return f"{100 * entry['entity_closest']:.1f}% / {entry['per']:.3f}"


def ladder_section(report: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """Markdown lines of the ladder: one row per stage plus the ceiling row (and a decoder-free
    speaking column where the tokenizer's phoneme head read the codes)."""
    ladder, ceiling = report.get("ladder") or {}, report.get("ladder_ceiling") or {}
    phonemes = "speaking_phonemes" in ceiling
    out = ["## Hearing and speaking (the ladder below question answering)", ""]
    if ceiling.get("status") == "not run":
        return out + [f"Not run: {ceiling['reason']}.", ""]
    n = ceiling.get("hearing", {}).get("n", 0)
    out += [f"{n} held-out `{ceiling.get('split', 'test')}` utterances (voices and carrier "
            "sentences training never used), each naming one entity. Cells: entity rate / WER. "
            "Hearing: the LM transcribes the speech codes; speaking: the LM reads the text aloud "
            "and the judge transcribes the decoded audio."
            + (" Decoder-free: the speech tokenizer's phoneme head reads the said codes (cells: "
               f"share whose name is the closest of {ceiling['speaking_phonemes']['names']} names "
               "/ phoneme error rate; ceiling: the sentences' own codes)." if phonemes else ""), "",
            "| model | hearing | speaking |" + (" speaking, phoneme head |" if phonemes else ""),
            "|---|---|---|" + ("---|" if phonemes else "")]

    def row(label: str, entry: dict[str, Any], rungs: list[str]) -> str:
        if phonemes:
            rungs.append(_phoneme_cell(entry.get("speaking_phonemes")) if "hearing" in entry else "-")
        return "| " + " | ".join([label, *rungs]) + " |"

    for stage in LM_STAGES:
        entry = ladder.get(stage) or {"status": "not run", "reason": "not measured"}
        rungs = [_cell(entry["hearing"]), _cell(entry["speaking"])] if "hearing" in entry \
            else ["-", f"- ({entry.get('reason', '')})"]
        out.append(row(stage, entry, rungs))
    out.append(row("ceiling (judge on original / on resynthesis)", ceiling,
                   [_cell(ceiling["hearing"]), _cell(ceiling["speaking"])]))
    if "ladder" in plots:
        out += ["", f"![ladder across stages]({plots['ladder']})"]
    return out + [""]


__all__ = ["plot_ladder", "ladder_section"]
