"""Clouds: ``linuxkit push PROVIDER`` and ``linuxkit run PROVIDER``. Each provider's SDK is an optional extra
(``pip install 'linuxkit[aws]'``...), imported only by that provider's verbs through :func:`.extras.require`."""
