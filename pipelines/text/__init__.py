"""Text normalisation and the brand/category matcher (SPEC 4)."""
