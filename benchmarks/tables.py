"""Tables, plot and the BENCHMARKS.md block from a results CSV: a thin wrapper over ``sebra.bench.tables.main``.

python benchmarks/tables.py --dataset builtin                       # print the markdown, write the PNG
python benchmarks/tables.py --dataset builtin --markdown BENCHMARKS.md   # rewrite its bench:builtin block
"""

from __future__ import annotations

import sys

from sebra.bench.tables import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
