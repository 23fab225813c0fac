"""``validate RECIPE [key=value ...]``: check a recipe without running anything."""

import argparse

HELP = "check a recipe (plugins, parameters, stages, trainer arguments) without running it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="key=value")


def main(args: argparse.Namespace) -> int:
    from toolkit.runner import prepare

    recipe = prepare(args.recipe, args.overrides)
    print(f"ok: {args.recipe} ({len(recipe.get('stages') or [])} stages, run folder {recipe['out']})")
    return 0
