"""Funnel engine (SPEC 5): pure, vectorised functions from lake tables to the published tables."""
