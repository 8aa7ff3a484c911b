"""``run qemu --metadata PROVIDER``: an emulated cloud metadata service for the guest.

The HTTP providers are served by :class:`MetadataServer` (:mod:`.server`), a standard-library HTTP server on a
Unix socket in a private temporary directory, run in a thread of ``run qemu`` for the life of the VM (with
``--detached``: of :mod:`linuxkit.run.mdhost`, which runs qemu in the background). qemu's user
network (:mod:`.network`) is given the link-local network ``169.254.0.0/16`` (the guest's DHCP lease:
169.254.2.15, gateway 169.254.2.2) and a ``guestfwd`` rule per metadata address: for each TCP connection the
guest opens to 169.254.169.254:80 (169.254.42.42:80 for Scaleway), slirp runs :mod:`linuxkit.run.mdrelay`,
which copies the connection to the server's socket; the metadata addresses not served lead to no service
(else slirp takes them out to the host's network). A ``guestfwd`` to a socket *chardev* carries only the
guest's first connection (qemu 7.2, Debian 12); with the relay a request costs the guest ~150 ms under TCG,
14 ms of it the relay's start.

Each provider (one module each: :mod:`.aws`, :mod:`.gcp`, :mod:`.azure`, :mod:`.openstack`, :mod:`.hetzner`,
:mod:`.digitalocean`, :mod:`.vultr`, :mod:`.scaleway`; the table and the choice in :mod:`.providers`) answers
the paths and enforces the headers its documentation gives; requests missing a required header are refused
as the real service refuses them (GCP without ``Metadata-Flavor: Google``: 403, Azure without
``Metadata: true`` or ``api-version``: 400, AWS with tokens required and none given: 401). The answers
(:mod:`.answers`) come from :class:`Instance` (:mod:`.instance`): the user data (``--data``/``--data-file``),
the hostname, an instance id kept in the state directory and the SSH keys of ``--ssh-key``; the rest (zone,
instance type, addresses) are fixed plausible values. ``openstack-configdrive`` and ``cdrom`` (NoCloud) are
ISO images (:func:`iso_files`, :mod:`.iso`) attached as a CD instead.

Every request is appended to ``STATE/metadata.log`` (method, target, status, the notable headers), so a
user can see what the guest asked.
"""

from __future__ import annotations

from .answers import Answer, Request
from .instance import Instance, instance_from_json, instance_to_json
from .iso import iso_files
from .network import GATEWAY_IPV4, GUEST_IPV4, METADATA_ADDRESSES, NETWORK, guest_addresses
from .providers import PROVIDER_HINT, PROVIDERS, make_answerer
from .server import MetadataServer, socket_directory

__all__ = [
    "GATEWAY_IPV4",
    "GUEST_IPV4",
    "METADATA_ADDRESSES",
    "NETWORK",
    "PROVIDERS",
    "PROVIDER_HINT",
    "Answer",
    "Instance",
    "MetadataServer",
    "Request",
    "guest_addresses",
    "instance_from_json",
    "instance_to_json",
    "iso_files",
    "make_answerer",
    "socket_directory",
]
