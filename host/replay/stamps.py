"""The model backend on another fabric's timing: book records stamped as that fabric stamped them.

The risk gate's rate windows count fabric cycles: a quote word's time is
the ingress stamp the pricer gave the book record that triggered it.  The
model backend (:class:`host.runtime.fabric.ModelFabric`) derives that
stamp from the frame's arrival time in the capture; the simulated fabric
(:class:`host.runtime.rtl_fabric.RtlFabric`) stamps with its own counter,
at the pace the simulator drives frames -- serially, as fast as the
fabric takes them, so many more words fall into one window than on the
day itself.  Same frames, different times, different rate-window
decisions, and the end states differ where a window bound.

A frame's arrival cycle alone would not do either: the records of one
frame reach the pricer one after the other (at least a record's beats
apart), so a window edge can fall between two of them.  The simulated
fabric therefore reports the stamp of every book record
(:attr:`RtlFabric.record_cycles`), and :class:`StampedModelFabric` gives
the model's book records exactly those stamps, in order.  Same stimulus,
same timing: the model's gate decides every rate window as the fabric's
did, and any remaining difference is a difference of the design.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from host.runtime.fabric import FabricError, ModelFabric
from rtl.fabric.model import FabricConfig, FabricModel
from rtl.feed_path.model import Frame
from rtl.order_book.model import TDEST_UPDATE


class StampError(FabricError):
    """The stamps do not fit the model's run: the two fabrics did not send
    the same book records."""


class StampedModelFabric(ModelFabric):
    """The model fabric whose k-th book record since :meth:`load` takes
    ``record_cycles[k]`` as its ingress stamp; ``arrival_ns`` is ignored.
    ``record_cycles`` may still be growing while the run goes (the other
    fabric's list, filled as it runs): each stamp is read when its record
    is priced."""

    def __init__(self, record_cycles: Sequence[int], core_mhz: float = 250.0):
        super().__init__(core_mhz)
        self.record_cycles = record_cycles
        self.used = 0

    def load(self, config: FabricConfig) -> None:
        super().load(config)
        self.used = 0
        self._stamp(self.model)

    def _stamp(self, model: FabricModel) -> None:
        # The chain's record() is where a book record gets its stamp; the
        # model passes every book record through it, in order.
        record = model.chain.record

        def stamped(data: bytes, dest: int = TDEST_UPDATE, error: bool = False,
                    ingress_cycle: int = 0) -> str:
            if self.used >= len(self.record_cycles):
                raise StampError(f"the model prices book record {self.used + 1}, the other "
                                 f"fabric stamped {len(self.record_cycles)}")
            cycle = int(self.record_cycles[self.used])
            self.used += 1
            return record(data, dest, error, cycle)

        model.chain.record = stamped

    def push(self, frames: Iterable[Frame], arrival_ns: Iterable[int] | None = None) -> None:
        super().push(frames)

    def left(self) -> int:
        """Stamps not used yet: nonzero at the end of a run means the other
        fabric sent more book records."""
        return len(self.record_cycles) - self.used

    def check_all_used(self) -> None:
        if self.left():
            raise StampError(f"the other fabric stamped {len(self.record_cycles)} book records, "
                             f"the model priced {self.used}")
