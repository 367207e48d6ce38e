"""Generators survive pickling as their state: the copy draws what the original would have drawn next."""

from __future__ import annotations

import pickle

import torch

from sebra.utils.rng import GeneratorPickling


class _Holder(GeneratorPickling):
    def __init__(self) -> None:
        self.gen = torch.Generator().manual_seed(7)
        self.other = [1, 2]


def test_pickled_generator_continues_the_same_stream() -> None:
    h = _Holder()
    torch.rand(3, generator=h.gen)  # advance past the seed state
    copy = pickle.loads(pickle.dumps(h))
    assert isinstance(copy.gen, torch.Generator) and copy.gen is not h.gen
    assert torch.equal(torch.rand(5, generator=copy.gen), torch.rand(5, generator=h.gen))
    assert copy.other == [1, 2]


def test_pickled_state_holds_no_tensor() -> None:
    # torch.multiprocessing shares tensors through file descriptors; the state must be plain bytes
    state = _Holder().__getstate__()
    assert not any(isinstance(v, (torch.Tensor, torch.Generator)) for v in state.values())
