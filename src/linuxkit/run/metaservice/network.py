"""qemu's user network for a metadata boot: the guest's addresses and the addresses the service answers at."""

from __future__ import annotations

#: qemu's user network for a metadata boot and the addresses slirp gives in it (net + 2.2, 2.3, 2.15)
NETWORK = "169.254.0.0/16"
GUEST_IPV4 = "169.254.2.15"
GATEWAY_IPV4 = "169.254.2.2"
METADATA_IPV4 = "169.254.169.254"
SCALEWAY_IPV4 = "169.254.42.42"
#: every address a provider's service answers at (port 80)
METADATA_ADDRESSES = (METADATA_IPV4, SCALEWAY_IPV4)


def guest_addresses(provider: str) -> tuple[str, ...]:
    """The IPv4 addresses (port 80) the guest reaches the service at."""
    return (SCALEWAY_IPV4,) if provider == "scaleway" else (METADATA_IPV4,)
