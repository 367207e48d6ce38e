"""Print the Colored MNIST table of BENCHMARKS.md §8 (ours beside the published numbers) from the merged results.

python benchmarks/colored_mnist_table.py [benchmarks/results/colored_mnist.csv] [--metric conflicting_acc]
"""

from __future__ import annotations

import argparse

import pandas as pd

from sebra.bench.colored_mnist_table import colored_mnist_markdown

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="?", default="benchmarks/results/colored_mnist.csv")
    p.add_argument("--metric", default="unbiased_acc")
    a = p.parse_args()
    print(colored_mnist_markdown(pd.read_csv(a.results), a.metric))
