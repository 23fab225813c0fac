"""``eval RUN_DIR [--manifest M]``: evaluate a run (or an exported model) and write a report."""

import argparse

HELP = "evaluate a run folder or exported model: spoken QA in four modes, retention, WER, latency"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run folder (or an exported model folder)")
    parser.add_argument("--manifest", help="QA JSONL to use instead of RUN_DIR/corpus/qa.jsonl "
                                           "(rows: id, split, question, key, question_utt|question_audio)")
    parser.add_argument("--out", help="report folder (default: RUN_DIR/eval_report)")
    parser.add_argument("--stage", metavar="STAGE",
                        help="of a run folder: export, sft, stage2, stage1, or latest (the newest "
                             "that loads, said in one line). Default: the run's export if it has "
                             "one, else its newest LM stage; a damaged one is an error, not skipped")
    parser.add_argument("--max-questions", type=int, help="questions per split")
    parser.add_argument("--baseline-run", help="sibling run trained without stage1")
    parser.add_argument("--no-cascade", action="store_true", help="skip the cascade baseline")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="any eval parameter (see stage_args.eval), e.g. max_new_tokens=120")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from omegaconf import OmegaConf

    from toolkit.errors import ToolkitError
    from toolkit.evaluation.report import MODE_NAMES
    from toolkit.evaluation.run import EvalParams, evaluate
    from toolkit.loading import load
    from toolkit.params import parse_params
    from toolkit.recipe import parse_overrides

    path = Path(args.run_dir)
    if not path.is_dir():
        raise ToolkitError(f"{path}: no such run folder")
    values = OmegaConf.to_container(parse_overrides(args.param)) if args.param else {}
    if args.max_questions is not None:
        values["max_questions"] = args.max_questions
    if args.baseline_run:
        values["baseline_run"] = args.baseline_run
    if args.no_cascade:
        values["cascade"] = False
    params = parse_params(EvalParams, values, "eval")
    run_dir = path if (path / "recipe.yaml").is_file() else None
    if args.manifest and not Path(args.manifest).is_file():
        raise ToolkitError(f"{args.manifest}: manifest not found")
    lm = load(path, args.stage)
    out = Path(args.out) if args.out else path / "eval_report"
    report = evaluate(lm, run_dir, out, params, Path(args.manifest) if args.manifest else None)
    for split, modes in report["accuracy"].items():
        print(f"{split}: " + "  ".join(f"{MODE_NAMES[m]} {'-' if v is None else f'{100 * v:.1f}%'}"
                                       for m, v in modes.items()))
    print(out / "report.md")
    return 0
