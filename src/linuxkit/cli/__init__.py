"""The ``linuxkit`` command line."""
