"""`segment-pendo schema [--out F]`: the config's JSON Schema, for editors that validate and complete pendo.toml."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from generator.arguments import output_file

EXIT_OK = 0


def add_schema_command(commands: argparse._SubParsersAction[Any], path_type: Any) -> None:
    """Register `schema`; path_type is the CLI's checked path argument type."""
    schema = commands.add_parser(
        "schema",
        help="write the config's JSON Schema (for Taplo / Even Better TOML)",
        description=(
            "Print (or write to --out) the JSON Schema of the TOML config, made from the same models the "
            "loader checks with. Point an editor at it with a first line `#:schema ./segment-pendo.schema.json` "
            "in pendo.toml. Nothing is written unless the whole file is."
        ),
    )
    schema.add_argument("--out", type=path_type, metavar="PATH", help="the JSON file to write (default: print it)")
    schema.set_defaults(run=run_schema)


def run_schema(arguments: argparse.Namespace) -> int:
    """Write or print the schema."""
    from generator.files import write_file  # noqa: PLC0415  (keeps `--help` fast)
    from generator.schema import schema_text  # noqa: PLC0415

    out: Path | None = arguments.out
    if out is None:
        sys.stdout.write(schema_text())
        return EXIT_OK
    output_file("--out", out)
    write_file(out, schema_text().encode("utf-8"))
    # Taplo resolves a relative #:schema path from the TOML file's own folder.
    print(f"wrote {out}; a config in the same folder starts with the line:  #:schema ./{out.name}")
    return EXIT_OK
