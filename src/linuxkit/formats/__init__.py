"""Output formats, registered by upstream's names."""
