"""The rootfs tar: image flattening, upstream's sanitising, kernel, files and bundle layout (the tar
codec itself is :mod:`linuxkit.tar`)."""
