"""The one HTTP stack: registries, the Debian archive and YAML files given by URL all use it.

- :mod:`.transport`: HTTP/1.1 on standard-library sockets (connection pool shared by threads, TLS
  with the system's CA store plus ``--cert-file``\\ s, proxies from the environment as curl reads
  them, chunked/until-close bodies, ``readinto`` into the caller's buffer).
- :mod:`.client`: :class:`~.client.HttpClient`, redirects (at most 10; ``Authorization`` never sent
  to another host) and the retry policy around the transport; ``Range`` answers
  (:func:`~.client.content_range_start`) for resumed downloads.
- :mod:`.download`: :func:`~.download.download`, the one resumable download into a file (temporary
  file beside the destination, ``Range`` after a dropped connection, size and sha256 checked over
  every byte kept, atomic rename): registry blobs and Debian archive files.
- :mod:`.retry`: the one retry policy (connection errors, 429 and 5xx; 4 retries, backoff 0.5, 1,
  2, 4 s; ``Retry-After`` honoured up to 30 s).

Registry auth stays in :mod:`linuxkit.oci.registry`; the verification of what is downloaded
(digests, sizes, signatures) stays with each caller.

Why our own and not ``requests`` (which the Debian client used) or ``urllib`` (YAML URLs), measured
on our 2-core machines (``python -X importtime``, 21 runs, min / median, after ``linuxkit.log``):

====================  =================  =========================================
import                min / median (ms)  note
====================  =================  =========================================
``requests``          79 / 96            imports ``ssl`` and ``urllib3`` always
``urllib3``           56 / 85
``urllib.request``    27 / 39            imports ``http.client`` and ``ssl``
``linuxkit.http``     13 / 18            ``ssl`` (9 / 11) only when a URL is HTTPS
====================  =================  =========================================

Throughput is the same: a 26.7 MB kernel .deb from the Debian mirror, sha256 checked inline
(``debian.transport.download``, 5 runs, median): HTTP ``requests`` 0.120 s, ours 0.102 s; HTTPS
``requests`` 0.095 s, ours 0.102 s (the mirror is close; differences are noise). Robustness: ours
reuses connections across the download threads (``urllib`` opens one per request; the old code
kept one ``requests`` session per thread), verifies TLS against the system's CA store (``requests``
uses ``certifi``'s bundle unless told otherwise, so a site CA installed in the system was ignored),
matches ``no_proxy`` entries with ports and ``*.`` as curl does, retries with one policy (neither
library retries by default) and resumes broken transfers with ``Range`` (registry blobs and Debian
files alike). Start-up matters more than features here: ``cache pull`` of a small image costs less
than importing ``requests``.
"""
