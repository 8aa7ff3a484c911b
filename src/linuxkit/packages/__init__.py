"""LinuxKit packages: ``build.yml`` and the tag a package directory builds to."""
