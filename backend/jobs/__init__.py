"""RQ job functions: what workers run. Imported by workers only (they pull in the engines)."""
