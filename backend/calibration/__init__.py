"""Learning from annotators' corrections: support sets, calibration layers, revisions."""
