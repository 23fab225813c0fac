"""``export MODEL OUT [--format toolkit|moss-speech]``: write a model as one folder.

``MODEL`` is a run folder, an exported folder or a MOSS-Speech folder. ``--format toolkit``
(default) writes :func:`toolkit.loading.export_model`'s layout; ``--format moss-speech`` writes
the released MOSS-Speech layout (model imported from one, e.g. fine-tuned with
``recipes/moss_speech_sft.yaml``), loadable wherever the released checkpoint is."""

import argparse

HELP = "export a run or model as one folder (toolkit format, or the MOSS-Speech layout)"
FORMATS = ("toolkit", "moss-speech")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="run folder, exported folder or MOSS-Speech folder")
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--format", choices=FORMATS, default="toolkit")
    parser.add_argument("--stage", default=None, help="LM stage of a run (default: the latest)")


def main(args: argparse.Namespace) -> int:
    from toolkit.formats.moss_speech import export_moss
    from toolkit.loading import export_model, load

    lm = load(args.model, args.stage)
    out = export_moss(lm, args.out) if args.format == "moss-speech" else export_model(lm, args.out)
    print(f"exported {lm.source} -> {out} ({args.format})")
    return 0
