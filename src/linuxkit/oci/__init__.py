"""OCI images: references, the image-layout cache and (later) the registry client."""
