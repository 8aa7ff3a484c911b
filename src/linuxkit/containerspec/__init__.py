"""OCI bundle specs for onboot, onshutdown and service containers (``config.json`` and ``runtime.json``).

The package re-exports nothing: ``config.load`` checks volumes with :mod:`.volumes` alone, without
the spec builder (:mod:`.oci`) and its label parser; import the submodule that you use.
"""
