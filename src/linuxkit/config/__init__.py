"""LinuxKit YAML configuration: loading with positions, the schema, merging, ``@pkg:`` templates."""
