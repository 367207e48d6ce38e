"""The ``sebra`` command: ``demo``, ``rank``, ``fit``, ``data verify``, ``inspect``, ``bench``.

``sebra fit`` is Lightning's own CLI (``LightningCLI``: YAML configs with ``model``/``data``/``trainer`` sections whose
schema is the typed ``__init__`` arguments); the other sub-commands are small argparse front ends.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = ["main"]

USAGE = """usage: sebra <command> [options]

commands:
  demo          Sebra and ERM on the built-in benchmark: one table (worst-group, I.D. accuracy, gaps, ranking tau)
  rank          Stage 1 only: write rankings.csv and a summary
  fit           the full pipeline from a config: sebra fit --config configs/urbancars.yaml
  data verify   check a data set on disk: sebra data verify <urbancars|bar|celeba|folder|csv> <root>
  inspect       grids, elimination curves and report.html from a rankings.csv
  bench         benchmark methods x seeds and write the results table

Run `sebra <command> --help` for the options of each."""


def _fit(argv: list[str]) -> int:
    from lightning.pytorch.cli import LightningCLI

    from sebra.datasets.datamodule import SebraDataModule
    from sebra.methods.base import BaseMethod

    cli = LightningCLI(BaseMethod, SebraDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                       args=argv, save_config_kwargs={"overwrite": True})
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best" if cli.model.selection != "last" else None)
    rankings = getattr(cli.model, "rankings", None)
    if rankings is not None and cli.trainer.log_dir:
        print(f"rankings: {Path(cli.trainer.log_dir) / 'rankings.csv'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # Lightning 2.x calls a pytree API that torch 2.14 deprecates, once per loader: noise, not a user problem.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        from sebra.demo import main as demo_main

        return demo_main(rest)
    if cmd == "rank":
        from sebra.demo import rank_main

        return rank_main(rest)
    if cmd == "fit":
        return _fit(rest)
    if cmd == "data":
        if not rest or rest[0] != "verify":
            print("usage: sebra data verify <dataset> <root> [options]", file=sys.stderr)
            return 2
        from sebra.datasets.verify import main as verify_main

        return verify_main(rest[1:])
    if cmd == "inspect":
        from sebra.inspect.cli import main as inspect_main

        return inspect_main(rest)
    if cmd == "bench":
        from sebra.bench import main as bench_main

        return bench_main(rest)
    print(f"sebra: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
