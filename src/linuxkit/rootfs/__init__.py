"""The rootfs tar: image flattening, upstream's sanitising, bundle layout and a Go-identical tar writer."""
