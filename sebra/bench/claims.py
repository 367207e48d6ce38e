"""Run claims: two benchmark lanes given the same work must not train the same run into the same folder.

Each lane reads only its own results file, so two lanes started with one command see the same pending runs in the
same order. Without a claim both train ``(method, seed)`` into one run folder at once, and the second one's logger
fails on the first one's ``metrics.csv`` (or, worse, both finish and overwrite each other's checkpoints). A claim
is a file ``seed<N>.claim`` beside the run folder, created atomically (``O_EXCL``) before the run and removed after
its rows are saved; it names the process that holds it. A lane that finds a live claim skips that run (the other
lane's rows reach the merged table); a claim left by a process that is no longer running on this machine is
taken over.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

__all__ = ["claim_path", "claim_run", "release_run"]


def claim_path(run_folder: Path) -> Path:
    """The claim file of a run folder (``.../seed0`` -> ``.../seed0.claim``)."""
    return run_folder.with_name(run_folder.name + ".claim")


def _alive(holder: dict) -> bool:
    """Whether the process named in a claim still runs (a claim from another machine counts as alive)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except (KeyError, TypeError, ValueError):
        return False
    return True


def claim_run(run_folder: Path, lane: str = "") -> dict | None:
    """Claim a run for this process; ``None`` when claimed, else what the live claim holding it says.

    A claim whose process has ended on this machine (a lane that was killed) is replaced; an unreadable one too.
    """
    path = claim_path(run_folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "lane": lane}
    for _ in range(2):  # a stale claim is removed once, then claimed again
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                return None  # already ours
            if holder and _alive(holder):
                return holder
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return None
    raise RuntimeError(f"bench: could not claim {path}: another process keeps re-creating it")


def release_run(run_folder: Path) -> None:
    """Remove this process's claim of a run (nothing when the claim is not its own or absent)."""
    path = claim_path(run_folder)
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
