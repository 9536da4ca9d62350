"""``python -m board.console``: the console command without the ``zynqmm`` entry point."""
import sys

from board.console.cli import main

sys.exit(main())
