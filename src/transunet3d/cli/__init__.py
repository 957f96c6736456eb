"""The `transunet3d` command line: thin commands over the Python API."""
