"""``linuxkit serve``: a static HTTP server for a directory (network boot of ``kernel+initrd`` outputs).

:mod:`.address` parses ``--port`` (Go's ``[HOST]:PORT``), :mod:`.paths` maps a request path to a file
that stays inside the served directory, :mod:`.ranges` answers ``Range`` headers, :mod:`.ipxe` writes the
iPXE script served at ``/NAME.ipxe`` for every ``NAME-kernel`` + ``NAME-initrd.img``, and :mod:`.server`
is the HTTP server itself.
"""
