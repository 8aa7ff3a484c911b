"""Keyed image signatures in cosign's format (``pkg build --push --sign-key``, ``build --verify-key``).

``keys`` (ECDSA P-256 keys, sign and check bytes, through ``cryptography``), ``simplesigning`` (the
payload and the signature image, pure), ``registry`` (push a signature, find and check one),
``policy`` (which key an image needs: ``--verify-key``, ``--verify-policy``). See ``docs/signing.md``.
"""
