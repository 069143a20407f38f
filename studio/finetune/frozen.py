"""The local trainer's shortcut past the frozen blocks (see FrozenStart)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.finetune.trainer import Encoded

log = logging.getLogger(__name__)


class FrozenStart:
    """What the frozen blocks below the lowest adapted one make of each example, kept from its
    first pass. Those blocks have no LoRA and no dropout, so every later epoch (and validation)
    would compute the very same values: it starts at the first adapted block instead. With LoRA
    on the top 10 of SmolLM2's 30 blocks, epochs after the first take about half as long.

    Kept per example (a (tokens, hidden) tensor), up to `budget` bytes; an example that does not
    fit is computed in full each time. Before it is used, the shortcut is checked once against
    the full pass on a real batch, and switched off if they disagree (another architecture)."""

    BUDGET = 256 * 2**20

    def __init__(self, first_adapted: int, budget: int = BUDGET):
        self.first_adapted = first_adapted
        self.budget = budget
        self.used = 0
        self.saved: dict[int, Any] = {}
        self.checked: bool | None = None   # None: not yet; False: switched off

    def hidden(self, decoder, batch: list[Encoded], ids, mask):
        """The decoder's last hidden state for the batch, from the kept values when it can."""
        import torch
        if self.checked is not False and all(id(e) in self.saved for e in batch):
            width = ids.shape[1]
            start = torch.zeros(len(batch), width, self.saved[id(batch[0])].shape[-1],
                                dtype=self.saved[id(batch[0])].dtype, device=ids.device)
            for row, e in enumerate(batch):
                kept = self.saved[id(e)]
                start[row, :kept.shape[0]] = kept
            return self._from_first_adapted(decoder, start, mask)
        seen: list = []
        layer = decoder.layers[self.first_adapted]
        handle = layer.register_forward_pre_hook(
            lambda _m, args, kwargs: seen.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
        try:
            out = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        finally:
            handle.remove()
        if self.checked is False or len(seen) != 1:
            return out
        start = seen[0].detach()
        if self.checked is None:
            self.checked = self._agrees(decoder, ids, mask, start)
            if not self.checked:
                log.warning("the frozen blocks' shortcut disagrees with the full pass: every step runs them")
                self.saved.clear()
                return out
        for row, e in enumerate(batch):
            n = len(e.input_ids) if len(e.input_ids) <= start.shape[1] else start.shape[1]
            size = n * start.shape[-1] * start.element_size()
            if id(e) not in self.saved and self.used + size <= self.budget:
                self.saved[id(e)] = start[row, :n].clone()
                self.used += size
        return out

    def _agrees(self, decoder, ids, mask, start) -> bool:
        """Whether the shortcut from `start` gives the full pass's output on this batch: both in
        eval mode (LoRA dropout would make them differ) and without using up random numbers (a
        resumed run must stay the same as an uninterrupted one)."""
        import torch
        training = decoder.training
        devices = [ids.device] if ids.is_cuda else []
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                decoder.eval()
                full = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
                short = self._from_first_adapted(decoder, start, mask)
        finally:
            decoder.train(training)
        real = mask.bool()
        return bool(torch.allclose(short[real].float(), full[real].float(), rtol=1e-3, atol=1e-3))

    def _from_first_adapted(self, decoder, start, mask):
        """The decoder run from the first adapted block: the blocks below are left out and
        `start` goes in where their output would (positions, mask and rotary as usual)."""
        import torch
        layers = decoder.layers
        decoder.layers = torch.nn.ModuleList(list(layers)[self.first_adapted:])
        try:
            return decoder(inputs_embeds=start, attention_mask=mask).last_hidden_state
        finally:
            decoder.layers = layers
