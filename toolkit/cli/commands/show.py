"""``show RECIPE [key=value ...]``: print the fully resolved recipe."""

import argparse

HELP = "print the fully resolved recipe (bases merged, overrides applied, interpolations resolved)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="key=value")


def main(args: argparse.Namespace) -> int:
    from toolkit.recipe import dump_recipe
    from toolkit.runner import prepare

    print(dump_recipe(prepare(args.recipe, args.overrides)), end="")
    return 0
