"""``run RECIPE [key=value ...]``: run a recipe's stages, skipping complete ones."""

import argparse

HELP = "run a recipe's stages (complete stages are skipped, so re-running resumes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe overrides, e.g. trainer.max_steps=10 out=runs/x")
    parser.add_argument("--only", action="append", metavar="STAGE",
                        help="run only this stage (repeatable)")


def main(args: argparse.Namespace) -> int:
    from toolkit.runner import run_recipe

    run_dir = run_recipe(args.recipe, args.overrides, debug=args.debug, only=args.only)
    print(run_dir)
    return 0
