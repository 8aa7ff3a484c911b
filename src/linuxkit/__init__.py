"""LinuxKit in Python: build small, immutable Linux systems where every process runs in a container."""

__version__ = "0.1.0"
