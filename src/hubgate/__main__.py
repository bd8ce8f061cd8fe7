"""`hubgate` and `python -m hubgate`: the client commands (lock, pull, verify, bundle) start here
without typer or any server module, so a fleet machine's boot-time pull is quick."""

from __future__ import annotations

import sys


def main() -> None:
    from hubgate.client.commands import COMMANDS, run

    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        sys.exit(run(sys.argv[1:]))
    from hubgate.cli import main as admin_main

    admin_main()


if __name__ == "__main__":
    main()
