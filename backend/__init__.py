"""lsclip: a Label Studio ML backend for zero-shot image pre-annotation."""

__version__ = "0.1.0"
