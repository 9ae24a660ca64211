"""Label config → targets, on every supported shape and every refusal."""

import pytest

from backend.labelconfig import LabelConfigError, parse_targets
from tests.helpers import single_config


def test_single_choices_with_predicted_values_and_alias():
    config = (
        '<View><Image name="img" value="$photo"/><Choices name="animal" toName="img">'
        '<Choice value="Dog" predicted_values="dog, puppy"/><Choice value="Cat" alias="cat_alias"/></Choices></View>'
    )
    (target,) = parse_targets(config)
    assert (target.from_name, target.to_name, target.data_key, target.kind) == ("animal", "img", "photo", "single")
    assert target.classes[0].texts == ("dog", "puppy")
    assert target.classes[0].value == "Dog"
    assert target.classes[1].value == "cat_alias" and target.classes[1].texts == ("Cat",)


def test_multiple_and_two_targets_and_model_skip_and_unsupported_skipped():
    config = (
        '<View><Image name="a" value="$left"/><Image name="b" value="$right"/>'
        '<Choices name="tags" toName="a" choice="multiple"><Choice value="x"/><Choice value="y"/></Choices>'
        '<Choices name="kind" toName="b"><Choice value="p"/><Choice value="q"/></Choices>'
        '<Choices name="skipme" toName="a" model_skip="true"><Choice value="z"/></Choices>'
        '<RectangleLabels name="box" toName="a"><Label value="car"/></RectangleLabels></View>'
    )
    targets = parse_targets(config)
    assert [(t.from_name, t.kind, t.data_key) for t in targets] == [("tags", "multiple", "left"), ("kind", "single", "right")]


def test_taxonomy_leaves_carry_their_paths():
    config = (
        '<View><Image name="image" value="$image"/><Taxonomy name="tax" toName="image">'
        '<Choice value="Animal"><Choice value="Dog" predicted_values="dog,puppy"/><Choice value="Cat"/></Choice>'
        '<Choice value="Vehicle"><Choice value="Car"/></Choice></Taxonomy></View>'
    )
    (target,) = parse_targets(config)
    assert target.kind == "taxonomy" and target.result_type == "taxonomy"
    assert [c.path for c in target.classes] == [("Animal", "Dog"), ("Animal", "Cat"), ("Vehicle", "Car")]
    assert target.classes[0].texts == ("dog", "puppy")


@pytest.mark.parametrize(
    "config, fragment",
    [
        ('<View><Image name="i" value="$i"/><RectangleLabels name="b" toName="i"><Label value="x"/></RectangleLabels></View>',
         "Supported: <Choices>, <Taxonomy>"),
        ("<View><Image", "not valid XML"),
        ("", "empty"),
        ('<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
         "Supported"),
        ('<View><Image name="i" value="$i"/><Choices name="c" toName="i"></Choices></View>', "no <Choice> children"),
    ],
)
def test_unservable_configs_say_how_to_fix(config, fragment):
    with pytest.raises(LabelConfigError) as info:
        parse_targets(config)
    assert fragment in str(info.value)
    assert "<Choices" in str(info.value)


def test_parse_is_cached_by_config():
    config = single_config(["a", "b"])
    assert parse_targets(config) is parse_targets(config)
