"""The ``kuota`` command line: a thin layer that parses, calls ``nodeclient``, and prints."""
