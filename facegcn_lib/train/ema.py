"""An exponential moving average of a model's weights, kept beside the training run.

Training moves the weights along a noisy path; the average of the recent weights lies nearer
the middle of the flat region that the path wanders in, and such flatter solutions carry
better to data unlike the training data (Izmailov et al. 2018, *Averaging Weights Leads to
Wider Optima*; Arpit et al. 2022, *Ensemble of Averages*, for domain generalisation). After
every optimiser step the average :math:`\\bar\\theta` moves towards the weights
:math:`\\theta`:

.. math::

    \\bar\\theta \\leftarrow d_n \\bar\\theta + (1 - d_n) \\theta,\\qquad
    d_n = \\min\\Big(d, \\frac{1 + n}{10 + n}\\Big),

where :math:`n` counts the updates so far and :math:`d` is the decay (the average's horizon
is about :math:`1 / (1 - d)` steps); the warm-up :math:`d_n` keeps the first averages close to
the weights (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``). Floating-point
buffers (batch normalisation's running statistics) are averaged the same way; integer buffers
are copied, and sparse buffers (constants such as the decoder's graph operators) are shared
with the model. The training itself is unchanged: the average is a shadow copy, used to validate
and to export. See :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

#: The warm-up's constants: the decay is at most (1 + n) / (WARMUP_OFFSET + n) after n updates.
WARMUP_OFFSET = 10.0


class WeightAverageError(ValueError):
    """A decay outside (0, 1), or a saved average that does not fit the model."""


class WeightAverage(nn.Module):
    """The exponential moving average of a model's parameters and floating-point buffers.

    Args:
        model: the model being trained (it is copied; the copy never needs gradients).
        decay: :math:`d` in (0, 1): the average's horizon is about ``1 / (1 - decay)`` steps.

    Attributes:
        module: the averaged model, in eval mode (call it like the model).
        updates: how many times :meth:`update` ran.

    Example:
        >>> ema = WeightAverage(model, decay=0.998)
        >>> for batch in loader:
        ...     train_step(model, batch)
        ...     ema.update(model)
        >>> ema.module(images)  # the averaged weights
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise WeightAverageError(f"the weight average's decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        # sparse buffers (the decoder's graph operators) are constants: shared, not copied
        shared = {id(b): b for b in model.buffers() if b.layout != torch.strided}
        self.module = copy.deepcopy(model, shared).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        """:math:`d_n`, the decay that the next :meth:`update` applies."""
        return min(self.decay, (1.0 + self.updates) / (WARMUP_OFFSET + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each step)."""
        weight = 1.0 - self.current_decay()
        mine = dict(self.module.named_parameters())
        avg: list[torch.Tensor] = []
        cur: list[torch.Tensor] = []
        for name, p in model.named_parameters():
            avg.append(mine[name])
            cur.append(p.detach())
        for name, b in model.named_buffers():
            a = self.module.get_buffer(name)
            if a is b:  # a shared constant
                continue
            if a.is_floating_point():
                avg.append(a)
                cur.append(b)
            else:
                a.copy_(b)
        torch._foreach_lerp_(avg, cur, weight)
        self.updates += 1

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """The averaged weights (``"model"``), the decay and the update count."""
        return {"model": self.module.state_dict(), "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True,  # type: ignore[override]
                        assign: bool = False) -> Any:
        """Restore an average saved by :meth:`state_dict` (for the same architecture)."""
        try:
            result = self.module.load_state_dict(state["model"], strict=strict)
        except (KeyError, RuntimeError) as err:
            raise WeightAverageError(
                f"the saved weight average does not fit this model ({err}); train into a new "
                "--out, or resume with the settings the run was started with") from err
        self.updates = int(state.get("updates", 0))
        return result

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The averaged model's output."""
        return self.module(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, updates={self.updates}"
