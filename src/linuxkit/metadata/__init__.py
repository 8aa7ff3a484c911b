"""Metadata for a running image: the ISO9660 ``config`` disc read by the guest's metadata package."""
