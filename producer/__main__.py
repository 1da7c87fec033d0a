"""``python -m producer``: see ``producer.cli``."""

from __future__ import annotations

import sys

from producer.cli import main as _cli_main


def main() -> int:
    return _cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
