"""Measuring predictions on labelled photos: the ``lsclip eval`` harness and its metrics."""
