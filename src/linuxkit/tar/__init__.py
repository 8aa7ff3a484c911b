"""The tar codec, byte-compatible with Go's ``archive/tar``: headers (``header``), a bounded reader
(``reader``) and a writer (``writer``)."""
