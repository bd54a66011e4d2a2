"""seedfunnel: measure cross-platform seeding."""
