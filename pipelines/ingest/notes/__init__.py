"""Note exporter adapters: one module per exporter family, all listed in ``registry``."""
