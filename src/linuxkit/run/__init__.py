"""``linuxkit run``: start a built image in a local VM (only the qemu backend here)."""
