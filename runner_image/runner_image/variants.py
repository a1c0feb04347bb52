"""Canary and shadow candidates inside one runner (being built: for now only the live model answers)."""

from __future__ import annotations


class Variants:
    def choose(self, call):
        return self.runtime.active(), "live"

    def after(self, slot, variant, call, msg, out) -> None:
        """Called after each answer: a shadow candidate answers the same request in the background."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.candidate = None  # the candidate's slot in this worker

    def slot_for(self, generation: int):
        """The candidate's slot when it is `generation` and loaded in this worker, else None."""
        slot = self.candidate
        return slot if slot is not None and slot.generation == generation else None

    def follow(self) -> None:
        """Called by every worker's watcher: load or drop the candidate another worker set."""
