"""`hubgate` and `python -m hubgate`: the client commands (lock, pull, verify, bundle) start here
without typer or any server module, so a fleet machine's boot-time pull is quick."""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    from hubgate.client.commands import COMMANDS, run

    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        sys.exit(run(sys.argv[1:], into_server=_import_into_server))
    from hubgate.cli import main as admin_main

    admin_main()


def _import_into_server(bundle: Path, data: Path | None, config: Path | None, private: bool) -> int:
    from hubgate.commands.seeding import import_bundle

    return import_bundle(bundle, data, config, private)


if __name__ == "__main__":
    main()
