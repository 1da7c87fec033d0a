"""``python -m producer`` and ``sensorsim-producer``: the ``sensorsim`` command under its older
names (see ``producer.cli``)."""

from __future__ import annotations

import sys
from pathlib import Path

from producer.cli import main as _cli_main


def main() -> int:
    name = Path(sys.argv[0]).name
    prog = name if name.startswith("sensorsim") else "python -m producer"
    return _cli_main(sys.argv[1:], prog)


if __name__ == "__main__":
    sys.exit(main())
