"""What upstream's output owes to Go, reproduced byte for byte: ``path`` (``path.Clean``, ``Dir``,
``Base``, ``Join``, ``filepath.Rel``), ``json`` (``encoding/json``), ``yaml`` (go-yaml v2/v3's
``Marshal``) and ``values`` (Go pointers, nils and ``omitempty`` structs for those printers)."""
