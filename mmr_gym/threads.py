"""A one-time warning when torch would train on several CPU threads, which is slow here.

The agents that learn on these environments have small networks (two layers of 64 units, batches
of a few hundred rows). torch's intra-op threads then cost more in synchronisation than they save,
and on busy cores they wait on each other: on a shared 2-core machine MaskablePPO trained 4,096
steps in 7 to 12 s on one thread and in 128 to 194 s on torch's default of two
(``python -m agents.rl.threads`` measures a machine). They also change the results: the order of
float sums follows the split of the work, so two threads train other weights than one.

The library's own entry points choose one thread (``agents.rl.train_agent``, ``train.py
--torch-threads``, the benchmarks). A script of one's own does not pass through them, so the
environments call :func:`warn_if_torch_threads` when they are built: nothing changes in torch, the
script's author is told once, and decides.
"""

from __future__ import annotations

import os
import sys
import warnings


class TorchThreadsWarning(UserWarning):
    """torch runs on several CPU threads, where one is usually several times faster for these networks.

    Silence it with ``warnings.filterwarnings("ignore", category=TorchThreadsWarning)``, or choose the
    count explicitly with ``OMP_NUM_THREADS``.
    """


_warned = False


def warn_if_torch_threads(stacklevel: int = 3) -> bool:
    """Warn once per process (:class:`TorchThreadsWarning`) if torch is loaded and uses several threads.

    It changes nothing, and it is silent when torch is not imported (it never imports it) or when
    ``OMP_NUM_THREADS`` is set (the thread count is then a choice, not torch's default).

    Args:
        stacklevel: passed to :func:`warnings.warn` (the caller's caller by default).

    Returns:
        Whether it warned now.
    """
    global _warned
    torch = sys.modules.get("torch")
    if _warned or torch is None or os.environ.get("OMP_NUM_THREADS"):
        return False
    threads = torch.get_num_threads()
    if threads <= 1:
        return False
    _warned = True
    warnings.warn(
        f"torch uses {threads} CPU threads (its default). The networks of agents trained on this "
        "environment are small, and one thread is usually several times faster (10x or more on a busy "
        "2-core machine) and repeats across machines: call torch.set_num_threads(1) before training, "
        "run with OMP_NUM_THREADS=1 (or =N to choose N and silence this), or train inside "
        "`with agents.rl.torch_threads(1):` of a source checkout. Silence this with "
        "warnings.filterwarnings('ignore', category=mmr_gym.threads.TorchThreadsWarning).",
        TorchThreadsWarning,
        stacklevel=stacklevel,
    )
    return True
