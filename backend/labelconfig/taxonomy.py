"""The ``<Taxonomy>`` control: the model scores leaf paths and reports the best one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from backend.labelconfig.targets import ClassSpec, LabelConfigError, Target, choice_texts, result_value


def taxonomy_target(control, to_name: str, data_key: str, label_config: str) -> Target:
    """Build a target whose classes are the taxonomy's leaves, each with its full path.

    label-studio-sdk flattens the taxonomy's choices, so the tree itself is read from
    the (already validated) config.
    """
    element = _find_taxonomy(label_config, control.name)
    classes: list[ClassSpec] = []

    def walk(node: ET.Element, path: tuple[str, ...]) -> None:
        for child in node:
            if child.tag != "Choice":
                continue
            value = child.attrib.get("value", "")
            here = path + (result_value(child.attrib, value),)
            if any(grand.tag == "Choice" for grand in child):
                walk(child, here)
            else:
                classes.append(ClassSpec(value=here[-1], texts=choice_texts(child.attrib, value), path=here))

    if element is not None:
        walk(element, ())
    if not classes:
        raise LabelConfigError(
            f'<Taxonomy name="{control.name}"> has no <Choice> children: nest <Choice value="..."/> '
            "elements inside it (leaves are what the model predicts)."
        )
    return Target(from_name=control.name, to_name=to_name, data_key=data_key, kind="taxonomy", classes=tuple(classes))


def _find_taxonomy(label_config: str, name: str) -> ET.Element | None:
    root = ET.fromstring(label_config)
    for node in root.iter("Taxonomy"):
        if node.attrib.get("name") == name:
            return node
    return None
