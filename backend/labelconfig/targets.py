"""Parse a Label Studio label config into the classification targets this backend serves.

A *target* is one classification control (``Choices`` or ``Taxonomy``) bound to one
``Image`` object. Parsing uses label-studio-sdk's ``LabelInterface``; results are
cached by the config's hash because Label Studio sends the config with every request.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache

log = logging.getLogger(__name__)

SUPPORTED_TAGS: tuple[str, ...] = ("Choices", "Taxonomy")
SUPPORTED_OBJECTS: tuple[str, ...] = ("Image",)

HOW_TO_FIX = (
    "Add a <Choices> or <Taxonomy> control with toName pointing at an <Image> object, e.g. "
    '<View><Image name="image" value="$image"/><Choices name="label" toName="image">'
    '<Choice value="cat"/><Choice value="dog"/></Choices></View>. '
    'Controls with model_skip="true" are ignored.'
)


class LabelConfigError(ValueError):
    """The label config cannot be served; the message says how to fix it."""


@dataclass(frozen=True)
class ClassSpec:
    """One class of a target: what goes into the result, and what the model reads."""

    value: str
    texts: tuple[str, ...]
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """One classification control bound to one image object."""

    from_name: str
    to_name: str
    data_key: str
    kind: str  # "single" | "multiple" | "taxonomy"
    classes: tuple[ClassSpec, ...]

    @property
    def result_type(self) -> str:
        return "taxonomy" if self.kind == "taxonomy" else "choices"

    @property
    def label_texts(self) -> tuple[tuple[str, ...], ...]:
        return tuple(c.texts for c in self.classes)


def config_hash(label_config: str) -> str:
    """A short stable hash of a label config."""
    return hashlib.sha256(label_config.encode("utf-8")).hexdigest()[:16]


def parse_targets(label_config: str) -> tuple[Target, ...]:
    """Targets of ``label_config``, or :class:`LabelConfigError` saying how to fix it."""
    if not isinstance(label_config, str) or not label_config.strip():
        raise LabelConfigError("label_config is empty. " + HOW_TO_FIX)
    return _parse_cached(label_config)


@lru_cache(maxsize=256)
def _parse_cached(label_config: str) -> tuple[Target, ...]:
    from label_studio_sdk.label_interface import LabelInterface

    from backend.labelconfig.choices import choices_target
    from backend.labelconfig.taxonomy import taxonomy_target

    try:
        interface = LabelInterface(label_config)
    except Exception as exc:  # the SDK raises lxml / its own errors
        raise LabelConfigError(f"label config is not valid XML: {exc}. " + HOW_TO_FIX) from exc

    builders = {"Choices": choices_target, "Taxonomy": taxonomy_target}
    targets: list[Target] = []
    skipped: list[str] = []
    for control in interface.controls:
        name = control.name
        if str(control.attr.get("model_skip", "")).lower() in {"true", "1", "yes"}:
            log.info("control %s <%s> skipped: model_skip=true", name, control.tag)
            continue
        builder = builders.get(control.tag)
        if builder is None:
            skipped.append(f"<{control.tag} name={name!r}>")
            log.info("control %s <%s> skipped: only %s are supported", name, control.tag, SUPPORTED_TAGS)
            continue
        for to_name in control.to_name or []:
            obj = _object(interface, to_name)
            if obj is None or obj.tag not in SUPPORTED_OBJECTS:
                tag = obj.tag if obj is not None else "missing"
                skipped.append(f"<{control.tag} name={name!r}> on <{tag} name={to_name!r}>")
                log.info("control %s skipped: toName %r is a %s, not an <Image>", name, to_name, tag)
                continue
            data_key = str(obj.value or "").lstrip("$")
            if not data_key:
                raise LabelConfigError(
                    f'<Image name="{to_name}"> has no value="$key": set value to the task data key '
                    'holding the image URL, e.g. value="$image".'
                )
            targets.append(builder(control, to_name, data_key, label_config))

    if not targets:
        found = ", ".join(skipped) if skipped else "no control tags"
        raise LabelConfigError(
            f"label config has no control this backend can serve (found: {found}). "
            f"Supported: {', '.join('<' + t + '>' for t in SUPPORTED_TAGS)} attached to an <Image>. " + HOW_TO_FIX
        )
    return tuple(targets)


def _object(interface, name: str):
    try:
        return interface.get_object(name)
    except Exception:  # the SDK raises when the name is unknown
        return None


def choice_texts(attrs: dict[str, str], value: str) -> tuple[str, ...]:
    """The texts the model reads for one choice: ``predicted_values`` synonyms, else the value."""
    raw = attrs.get("predicted_values") or ""
    synonyms = tuple(s.strip() for s in raw.split(",") if s.strip())
    return synonyms or (value,)


def result_value(attrs: dict[str, str], value: str) -> str:
    """What Label Studio stores for a choice: its ``alias`` when set, else its value."""
    return attrs.get("alias") or value
