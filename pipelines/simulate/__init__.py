"""A simulated world with planted, known effects, written as a landing zone."""
