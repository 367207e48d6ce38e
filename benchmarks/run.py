"""Run the benchmark sweep: a thin wrapper over ``sebra.cli.bench.main`` (same as ``sebra bench``).

python benchmarks/run.py --dataset builtin --methods erm,jtt,groupdro,sebra,oracle --seeds 3
"""

from __future__ import annotations

import sys

from sebra.cli.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
