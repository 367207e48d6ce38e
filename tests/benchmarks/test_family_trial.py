"""benchmarks/family_trial.py: settings are tried on dev variants only."""

from __future__ import annotations

import sys
from pathlib import Path


def test_trial_script_refuses_held_out_variants() -> None:
    import subprocess

    root = Path(__file__).parents[2]
    out = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "family_trial.py"),
            "--variant",
            "border-faintblur",
            "--rank-only",
            "--out",
            "/nonexistent/x.csv",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
        timeout=120,
    )
    assert out.returncode != 0
    assert "'border-faintblur' is a spent variant; settings are chosen on dev variants only" in out.stderr
