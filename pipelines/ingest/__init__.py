"""Ingestion (SPEC 1-3): exporter adapters, readers, quarantine."""
