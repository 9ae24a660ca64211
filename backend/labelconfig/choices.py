"""The ``<Choices>`` control: single or multiple choice over an image."""

from __future__ import annotations

from backend.labelconfig.targets import ClassSpec, LabelConfigError, Target, choice_texts, result_value


def choices_target(control, to_name: str, data_key: str, label_config: str) -> Target:
    """Build a target from a ``ChoicesTag`` of label-studio-sdk."""
    classes = []
    for key, label in (control.labels_attrs or {}).items():
        attrs = dict(label.attr or {})
        value = attrs.get("value") or key  # the SDK keys choices by alias when one is set
        classes.append(ClassSpec(value=result_value(attrs, value), texts=choice_texts(attrs, value)))
    if not classes:
        raise LabelConfigError(
            f'<Choices name="{control.name}"> has no <Choice> children: add at least two, e.g. '
            '<Choice value="cat"/><Choice value="dog"/> (dynamic choices from task data are not supported).'
        )
    mode = str(control.attr.get("choice", "single")).lower()
    kind = "multiple" if mode == "multiple" else "single"
    return Target(from_name=control.name, to_name=to_name, data_key=data_key, kind=kind, classes=tuple(classes))
