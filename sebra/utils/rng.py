"""``torch.Generator`` attributes that survive pickling (DDP spawn, DataLoader workers).

Used by Stage 1's controller, the methods and the data modules alike, so it belongs to none of them.
"""

from __future__ import annotations

import torch

__all__ = ["GeneratorPickling"]


class _SavedGenerator:
    """A ``torch.Generator`` as plain bytes, for pickling (see :class:`GeneratorPickling`)."""

    def __init__(self, gen: torch.Generator) -> None:
        self.device = str(gen.device)
        self.state = gen.get_state().numpy().tobytes()

    def restore(self) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.set_state(torch.frombuffer(bytearray(self.state), dtype=torch.uint8))
        return gen


class GeneratorPickling:
    """Mixin: pickle ``torch.Generator`` attributes as bytes, so objects holding them survive process spawning.

    ``Trainer(strategy="ddp_spawn")`` (and DataLoader workers under the spawn start method) pickle the module and the
    data module with ``torch.multiprocessing``'s reductions. A generator pickles its state as a *temporary* tensor,
    which that pickler shares through a file descriptor that is closed again before the child starts
    (``ValueError: bad value(s) in fds_to_keep``). Generator attributes are therefore pickled as their state bytes,
    which also makes the copy in every process start from the same state.
    """

    def __getstate__(self) -> dict:
        parent = getattr(super(), "__getstate__", None)
        state = parent() if parent is not None else dict(self.__dict__)
        if state is None:  # object.__getstate__ of an instance without attributes
            state = {}
        return {
            k: _SavedGenerator(v) if isinstance(v, torch.Generator) else v for k, v in dict(state).items()
        }

    def __setstate__(self, state: dict) -> None:
        state = {k: v.restore() if isinstance(v, _SavedGenerator) else v for k, v in state.items()}
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)
