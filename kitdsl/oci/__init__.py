"""OCI images: references, image configuration, registries and the cache."""
