"""The version of dsg_lib: a leaf module, imported by anything that reports it."""

__version__ = "0.1.0"
