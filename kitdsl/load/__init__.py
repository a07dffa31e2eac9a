"""Turning user files (system.py, LinuxKit YAML) into a System, with source locations."""
