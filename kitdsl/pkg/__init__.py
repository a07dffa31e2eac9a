"""Packages from Linux distributions: reading their archives, verifying, resolving and fetching
them, so that kitdsl can build images from them (:mod:`kitdsl.pkg.debian` for Debian)."""
