"""ReturnFreedMemory: glibc's free heap pages go back to the OS every EVERY_STEPS steps, and only when the
heap holds more free than FREE_FRACTION of what is in use (short steps with small activations skip the trim)."""

import ctypes
import ctypes.util
from types import SimpleNamespace

import pytest
import torch

from ftpipe.trainer import ReturnFreedMemory, _MallInfo2


class Recorded(ReturnFreedMemory):
    """The callback with glibc's heap totals replaced by given ones and its trims counted."""

    def __init__(self, in_use: int, free: int | None):
        super().__init__()
        self.calls = 0
        self.trim = lambda pad: setattr(self, "calls", self.calls + 1)
        self.info = None if free is None else (lambda: _MallInfo2(uordblks=in_use, fordblks=free))


def step_end(callback, step: int = ReturnFreedMemory.EVERY_STEPS) -> int:
    callback.on_step_end(None, SimpleNamespace(global_step=step), None)
    return callback.calls


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_a_heap_holding_more_free_than_the_fraction_of_its_use_is_trimmed():
    assert step_end(Recorded(in_use=400 << 20, free=577 << 20)) == 1  # Yelp's heap after a step


def test_only_every_few_steps_is_trimmed():  # each trim slows the next step, which faults the pages back in
    every = ReturnFreedMemory.EVERY_STEPS
    callback = Recorded(in_use=400 << 20, free=577 << 20)
    for step in range(1, 3 * every + 1):
        step_end(callback, step)
    assert callback.calls == 3


def test_a_heap_holding_little_free_is_left_alone():
    assert step_end(Recorded(in_use=279 << 20, free=94 << 20)) == 0  # the entity tagger's


def test_without_mallinfo2_every_step_is_trimmed():
    assert step_end(Recorded(in_use=279 << 20, free=None)) == 1


def test_on_a_gpu_nothing_is_trimmed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert step_end(Recorded(in_use=400 << 20, free=577 << 20)) == 0


@pytest.mark.skipif(not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"), reason="glibc < 2.33")
def test_glibcs_own_totals_see_freed_blocks_as_free():
    callback = ReturnFreedMemory()
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    before = callback.info()
    blocks = [libc.malloc(64 << 10) for _ in range(2000)]  # 125 MiB in heap-sized blocks (under the mmap threshold)
    held = callback.info()
    for block in blocks[:-1]:  # the last one keeps the freed space from being the heap's top
        libc.free(block)
    freed = callback.info()
    libc.free(blocks[-1])
    assert held.uordblks - before.uordblks >= 100 << 20
    assert freed.fordblks - held.fordblks >= 100 << 20
