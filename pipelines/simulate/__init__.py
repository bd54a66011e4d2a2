"""A simulated world with planted, known effects, written as a landing zone."""

from .landing import SimulationSummary, simulate_world
from .world import WorldParams

__all__ = ["SimulationSummary", "WorldParams", "simulate_world"]
