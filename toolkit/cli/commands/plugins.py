"""``plugins``: a table of installed plugins (kind, name, distribution, version, status)."""

import argparse

HELP = "list installed plugins with their distribution and version"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", help="only this kind (tokenizer, trunk, splitter, decoder, dataset)")
    parser.add_argument("--no-check", action="store_true", help="do not import plugins to check them")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from toolkit.registry import available

    plugins = available(args.kind, check=not args.no_check)
    table = Table(title="installed plugins")
    for col in ("kind", "name", "distribution", "version", "status"):
        table.add_column(col)
    for p in plugins:
        status = f"[red]{p.error}[/red]" if p.error else "[green]ok[/green]"
        table.add_row(p.kind, p.name, p.distribution, p.version, status)
    Console(width=160).print(table)
    return 1 if any(p.error for p in plugins) else 0
