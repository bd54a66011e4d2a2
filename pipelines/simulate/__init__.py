"""A simulated world with planted, known effects, written as a landing zone."""

from .arrival import ArrivalParams, Materialized, Schedule, load_schedule, materialize
from .landing import SimulationSummary, simulate_world
from .world import WorldParams

__all__ = [
    "ArrivalParams",
    "Materialized",
    "Schedule",
    "SimulationSummary",
    "WorldParams",
    "load_schedule",
    "materialize",
    "simulate_world",
]
