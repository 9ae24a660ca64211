"""Label config → prediction targets: one module per supported control tag."""

from backend.labelconfig.targets import (
    SUPPORTED_TAGS,
    ClassSpec,
    LabelConfigError,
    Target,
    parse_targets,
)

__all__ = ["SUPPORTED_TAGS", "ClassSpec", "LabelConfigError", "Target", "parse_targets"]
