"""The training step never waits for the device, and the paper preset compiles whole.

A host-device sync (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``, ``t[mask]``,
``nonzero``...) in the step stalls a GPU's queue once per step; a graph break splits
``torch.compile``'s graph. Both are easy to reintroduce without noticing, so these tests
count them on CPU, at the level of the operators torch dispatches.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import cyto
from cyto.nn import Cytoself, CytoselfConfig, train_one_epoch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Operators that copy a value to the host or whose output size depends on the data: on a
#: GPU each waits for the device. ``.item()``, ``float(t)``, ``bool(t)`` and ``.tolist()``
#: end in ``_local_scalar_dense``; ``t[mask]`` in ``nonzero``.
SYNCING = {
    "_local_scalar_dense",
    "nonzero",
    "masked_select",
    "_unique2",
    "unique_consecutive",
    "unique_dim",
    "repeat_interleave",
    "equal",
    "is_nonzero",
}
CYTO = str(Path(cyto.__file__).parent)
TORCH = str(Path(torch.__file__).parent)
OPTIM = str(Path(torch.optim.__file__).parent)


class _SyncCounter(TorchDispatchMode):
    """Count the syncing operators that cyto's own code runs (not torch's optimizers).

    Adam reads its step counter with ``.item()``; that counter lives on the host even when
    the model is on a GPU, so it is no device sync (on CPU the two look the same).
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._overloadpacket.__name__
        if name in SYNCING and _called_by_cyto():
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def _called_by_cyto() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        file = frame.f_code.co_filename
        if file.startswith(OPTIM):
            return False
        if not file.startswith(TORCH):
            return file.startswith(CYTO)
        frame = frame.f_back
    return False


def _tiny_model(**overrides) -> Cytoself:
    # the default codebook: EMA updates and dead-code restarts, the most step-side work
    config = CytoselfConfig.preset("tiny", in_channels=2, num_classes=4, **overrides)
    return Cytoself(config).train()


def _batches(steps: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(8, 2, 32, 32, generator=g), torch.randint(0, 4, (8,), generator=g))
        for _ in range(steps)
    ]


def _epoch_syncs(model: Cytoself, steps: int, **kwargs) -> Counter:
    """The syncing operators of one epoch of ``steps`` training steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with _SyncCounter() as counter:
        train_one_epoch(
            model,
            _batches(steps),
            optimizer,
            device=torch.device("cpu"),
            reconstruction_scale=1.0,
            log_every=10_000,
            **kwargs,
        )
    return counter.counts


@pytest.mark.parametrize("codebook", ["ema", "paper"])
@pytest.mark.parametrize("grad_clip", [0.0, 1.0])
def test_training_steps_do_not_sync_with_the_host(codebook, grad_clip):
    model = _tiny_model(codebook=codebook)
    _epoch_syncs(model, 1)  # the codebooks' one-off initialisation
    short = _epoch_syncs(model, 2, grad_clip=grad_clip)
    long = _epoch_syncs(model, 7, grad_clip=grad_clip)
    # the end of an epoch reads the sums once; five more steps must add nothing
    assert long == short, f"five more steps added host syncs: {dict(long - short)}"


def test_dead_codes_still_restart_without_a_sync():
    torch.manual_seed(0)
    model = _tiny_model(codebook="ema")
    vq = model.vq_local
    _epoch_syncs(model, 1)
    with torch.no_grad():
        vq.cluster_size[:4] = 0.0  # four codes nobody uses
        before = vq.codebook[:4].clone()
    _epoch_syncs(model, 1)
    assert not torch.allclose(vq.codebook[:4], before)
    assert bool((vq.cluster_size[:4] >= vq.dead_code_threshold).all())


# dynamo itself instantiates autograd Functions while tracing, which torch deprecates
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_paper_preset_step_compiles_without_graph_breaks():
    config = CytoselfConfig.preset("paper", in_channels=2, num_classes=20)
    model = Cytoself(config).train()
    x, y = torch.rand(2, 2, 100, 100), torch.tensor([1, 3])

    def step(x, y):
        output = model(x)
        loss = model.loss(x, y, output, reconstruction_scale=1.0)
        return loss.total, loss.perplexity_local, loss.accuracy_global

    step(x, y)  # the codebooks' one-off initialisation runs eagerly
    explanation = torch._dynamo.explain(step)(x, y)
    assert explanation.graph_break_count == 0, [r.reason for r in explanation.break_reasons]
    assert explanation.graph_count == 1


@pytest.mark.gpu
def test_no_sync_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = _tiny_model().cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(x.cuda(), y.cuda()) for x, y in _batches(4)]
    kwargs = dict(device=torch.device("cuda"), reconstruction_scale=1.0, log_every=10_000)
    train_one_epoch(model, batches[:1], optimizer, **kwargs)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in batches[1:]:
            output = model(x)
            loss = model.loss(x, y, output, reconstruction_scale=1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
