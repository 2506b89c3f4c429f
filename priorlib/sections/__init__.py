"""Logic behind individual book notebooks that does not belong in the general library."""
