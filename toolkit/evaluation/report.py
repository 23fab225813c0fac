"""``report.json`` + ``report.md`` with PNG plots (loss curves, accuracy per mode)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from toolkit.evaluation.ladder_report import ladder_section, plot_ladder
from toolkit.io import write_json, write_text

MODE_NAMES = {"s2s": "S->S", "s2t": "S->T", "t2s": "T->S", "t2t": "T->T"}
LOSS_STAGES = ("pretrain", "tokenizer", "decoder", "stage1", "stage2", "sft")


def read_loss_curves(run_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{stage: {metric: [(step, value)]}}`` of every ``*loss*`` column in the stages' CSV logs."""
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for stage in LOSS_STAGES:
        path = run_dir / stage / "logs" / "csv" / "metrics.csv"
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                step = row.get("step")
                for key, value in row.items():
                    if "loss" not in key or value in (None, "") or step in (None, ""):
                        continue
                    try:
                        curves.setdefault(stage, {}).setdefault(key, []).append((int(float(step)), float(value)))
                    except ValueError:
                        continue
    return curves


def plot_losses(curves: dict, path: Path) -> Path | None:
    """One panel per stage, every loss metric as a line; None when there is nothing to plot."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.2), squeeze=False)
    for ax, (stage, metrics) in zip(axes[0], curves.items()):
        for name, points in sorted(metrics.items()):
            steps, values = zip(*points)
            ax.plot(steps, values, label=name, linewidth=1)
        ax.set_title(stage)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_accuracy(accuracy: dict[str, dict[str, float | None]], path: Path) -> Path | None:
    """Grouped bars: one group per mode, one bar per split."""
    splits = [s for s, modes in accuracy.items() if any(v is not None for v in modes.values())]
    if not splits:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(MODE_NAMES)
    width = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, split in enumerate(splits):
        values = [accuracy[split].get(m) or 0.0 for m in modes]
        ax.bar([x + i * width for x in range(len(modes))], values, width, label=split)
    ax.set_xticks([x + width * (len(splits) - 1) / 2 for x in range(len(modes))])
    ax.set_xticklabels([MODE_NAMES[m] for m in modes])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _with_interval(value: Any, interval: list[float] | None) -> str:
    if value is None or not interval:
        return _pct(value)
    return f"{_pct(value)} [{100 * interval[0]:.0f}-{100 * interval[1]:.0f}]"


def accuracy_table(accuracy: dict, baselines: dict, intervals: dict | None = None) -> list[str]:
    """Rows per model and split; this model's cells carry their 95 % interval."""
    lines = ["| model | split | " + " | ".join(MODE_NAMES.values()) + " |",
             "|---|---|" + "---|" * len(MODE_NAMES)]
    rows = [("this model", accuracy, intervals or {})]
    rows += [(name, b["accuracy"], {}) for name, b in baselines.items() if b.get("status") == "run"]
    for name, acc, cis in rows:
        for split, modes in acc.items():
            cells = [_with_interval(modes.get(m), (cis.get(split) or {}).get(m)) for m in MODE_NAMES]
            lines.append(f"| {name} | {split} | " + " | ".join(cells) + " |")
    return lines


def answer_reading_lines(read: dict, ceiling: dict) -> list[str]:
    """The speech answers read by the phoneme head next to the right answer's own ceilings
    (see :mod:`toolkit.evaluation.answer_phonemes`); nothing when neither was measured."""
    ceiling = {} if ceiling.get("status") == "not run" else ceiling
    modes = sorted({m for s in read.values() for m in s}, key=list(MODE_NAMES).index)
    if not modes and not ceiling:
        return []
    splits = list(dict.fromkeys([*read, *ceiling]))

    def both(entry: dict | None) -> str:
        return f"{_pct(entry.get('key_said'))} / {_pct(entry.get('key_closest'))}" if entry else "-"
    out = ["", "Speech answers without the decoder: the answer's codes read by the tokenizer's phoneme "
           "head (key said unbroken / key the closest of all answer keys); the right answer spoken in the "
           "question voice and passed through the tokenizer bounds them (judge: the share the judge "
           "scores right once the decoder voices it).", "",
           "| split | " + " | ".join(MODE_NAMES[m] for m in modes) + " | right answer: judge | right answer: phonemes |",
           "|---|" + "---|" * (len(modes) + 2)]
    for split in splits:
        top = ceiling.get(split) or {}
        cells = [both((read.get(split) or {}).get(m)) for m in modes]
        cells += [_pct(top.get("judge")), both(top) if "key_closest" in top else "-"]
        out.append(f"| {split} | " + " | ".join(cells) + " |")
    return out


def render_markdown(report: dict[str, Any], plots: dict[str, str]) -> str:
    """The readable summary of ``report``."""
    out = [f"# Evaluation of {report['model']['source']}", "",
           f"Questions per split: {report['questions']}; sampling: {report['settings']['sampling']}; "
           f"judge: {report['judge']}.", "", "## Spoken question answering", ""]
    out += accuracy_table(report["accuracy"], report["baselines"], report.get("accuracy_ci"))
    out += ["", "Cells of this model: accuracy [95 % interval]."]
    out += answer_reading_lines(report.get("accuracy_phonemes") or {}, report.get("answer_ceiling") or {})
    if "accuracy" in plots:
        out += ["", f"![accuracy per mode]({plots['accuracy']})"]
    out += [""] + ladder_section(report, plots)
    out += ["", "## Text retention (the text path alone, chat-template QA and perplexity)", "",
            "| model | " + " | ".join(f"QA {s}" for s in report["accuracy"]) + " | perplexity |",
            "|---|" + "---|" * (len(report["accuracy"]) + 1)]
    for name, entry in report["retention"].items():
        if entry.get("status") == "not run":
            out.append(f"| {name} | " + " | ".join("-" for _ in report["accuracy"]) + f" | {entry['reason']} |")
            continue
        out.append(f"| {name} | " + " | ".join(_pct(entry["accuracy"].get(s)) for s in report["accuracy"])
                   + f" | {_num(entry['perplexity'], 2)} |")
    rs = report["resynthesis"]
    out += ["", "## Speech tokenizer / decoder resynthesis", ""]
    if rs.get("status") == "not run":
        out.append(f"Not run: {rs['reason']}.")
    else:
        out += [f"Judge WER on {rs['utterances']} held-out utterances ({rs['audio_seconds']} s): "
                f"original audio {_pct(rs['original_wer'])}, tokenizer -> decoder resynthesis "
                f"{_pct(rs['resynthesized_wer'])}."]
    lat = report["latency"]
    out += ["", "## Latency", ""]
    if lat.get("status") == "not run":
        out.append(f"Not run: {lat['reason']}.")
    else:
        ttfa, rtf = lat["time_to_first_audio_s"] or {}, lat["real_time_factor"] or {}
        out.append(f"{lat['mode']} on {lat['answers']} questions, streamed: time to first audio "
                   f"mean {_num(ttfa.get('mean'))} s (max {_num(ttfa.get('max'))} s); real-time factor "
                   f"mean {_num(rtf.get('mean'))} (compute seconds per second of answer audio).")
    out += ["", "## Baselines", ""]
    for name, b in report["baselines"].items():
        out.append(f"- **{name}**: " + (b.get("description", "") if b.get("status") == "run"
                                         else f"not run ({b.get('reason', '')})"))
    if "losses" in plots:
        out += ["", "## Training losses", "", f"![loss curves]({plots['losses']})"]
    if report.get("examples"):
        out += ["", "## Examples", "", "| mode | question | key | answer (judge transcript) | audio |",
                "|---|---|---|---|---|"]
        for ex in report["examples"]:
            audio = " ".join(f"[{k}]({v})" for k, v in ex["files"].items())
            out.append(f"| {MODE_NAMES[ex['mode']]} | {ex['question']} | {ex['key']} | "
                       f"{ex['output'] or '(empty)'} | {audio} |")
    parts = ", ".join(f"{name} {sec:.0f} s" for name, sec in report.get("seconds_by_part", {}).items())
    out += ["", f"Evaluation took {report['seconds']:.1f} s" + (f" ({parts})." if parts else "."), ""]
    return "\n".join(out)


def write_report(report: dict[str, Any], out_dir: Path, run_dir: Path | None) -> dict[str, Path]:
    """Write plots, ``report.json`` and ``report.md`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    if plot_accuracy(report["accuracy"], out_dir / "accuracy.png"):
        plots["accuracy"] = "accuracy.png"
    if report.get("ladder") and plot_ladder(report["ladder"], report.get("ladder_ceiling") or {},
                                            out_dir / "ladder.png"):
        plots["ladder"] = "ladder.png"
    if run_dir is not None and plot_losses(read_loss_curves(run_dir), out_dir / "losses.png"):
        plots["losses"] = "losses.png"
    report["plots"] = plots
    paths = {"json": write_json(out_dir / "report.json", report),
             "md": write_text(out_dir / "report.md", render_markdown(report, plots))}
    return paths


__all__ = ["read_loss_curves", "plot_losses", "plot_accuracy", "render_markdown", "write_report"]
