"""The providers of ``--metadata`` and how each is served; the answering function of an HTTP one."""

from __future__ import annotations

from collections.abc import Callable

from ...errors import UserError
from .answers import Answer, Request
from .aws import AwsTokens, aws_answer
from .azure import azure_answer
from .digitalocean import digitalocean_answer
from .gcp import gcp_answer
from .hetzner import hetzner_answer
from .instance import Instance
from .openstack import openstack_answer
from .scaleway import scaleway_answer
from .vultr import vultr_answer

#: provider → how it is served (``http``: :mod:`.server`; ``iso``: a CD, :mod:`.iso`), in the order of ``--help``
PROVIDERS: dict[str, str] = {
    "aws": "http",  # IMDSv2 tokens and IMDSv1 (EC2's HttpTokens=optional)
    "aws-v2": "http",  # tokens required (HttpTokens=required): IMDSv1 requests get 401
    "aws-v1": "http",  # an EC2-compatible service without tokens: PUT /latest/api/token gets 405
    "gcp": "http",
    "azure": "http",
    "openstack": "http",
    "hetzner": "http",
    "digitalocean": "http",
    "vultr": "http",
    "scaleway": "http",
    "openstack-configdrive": "iso",
    "cdrom": "iso",
    "nocloud": "iso",
}
PROVIDER_HINT = "providers: " + ", ".join(PROVIDERS)


def make_answerer(provider: str, inst: Instance) -> Callable[[Request], Answer]:
    """The function that answers one request for ``provider`` (keeps the IMDSv2 tokens it issued)."""
    if provider.startswith("aws"):
        tokens = AwsTokens()
        mode = {"aws": "optional", "aws-v2": "required", "aws-v1": "none"}[provider]
        return lambda req: aws_answer(req, inst, tokens, mode)
    answerers: dict[str, Callable[[Request, Instance], Answer]] = {
        "gcp": gcp_answer,
        "azure": azure_answer,
        "openstack": openstack_answer,
        "hetzner": hetzner_answer,
        "digitalocean": digitalocean_answer,
        "vultr": vultr_answer,
        "scaleway": scaleway_answer,
    }
    if provider not in answerers:
        raise UserError(f"{provider} is not served over HTTP", hint=PROVIDER_HINT)
    one = answerers[provider]
    return lambda req: one(req, inst)
