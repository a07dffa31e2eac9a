"""Building blocks shared by every product: the kernel, the init, the base services."""
