import pytest

from lsflow.core.model.label_config import LabelConfig, LabelConfigError, LabelSpec, number_classes
from lsflow_tests.paths import IMAGE_CONFIG


def test_sample_config_controls_objects_and_class_order():
    config = LabelConfig.from_file(IMAGE_CONFIG)
    assert [c.name for c in config.controls] == ["label", "outline", "surface", "joints", "weather"]
    assert config.control("label").tag == "rectanglelabels"
    assert config.control("label").to_names == ("image",)
    assert config.data_key("image") == "image"
    # Config order, keypoints excluded: they name parts of an object, not classes.
    assert config.classes().names == ["Car", "Person", "Road"]
    assert config.classes().ids == {"Car": 0, "Person": 1, "Road": 2}


def test_category_attribute_fixes_ids_and_the_rest_fill_free_ids_in_config_order():
    config = LabelConfig.parse("""
        <View><Image name="img" value="$photo"/>
          <RectangleLabels name="box" toName="img">
            <Label value="zebra"/><Label value="ant" category="0"/><Label value="cat" category="5"/>
            <Label value="bee"/>
          </RectangleLabels></View>""")
    assert config.classes().ids == {"ant": 0, "zebra": 1, "bee": 2, "cat": 5}
    assert config.data_key("image") == "photo"


def test_keypoint_order_follows_model_index_then_config_order():
    config = LabelConfig.parse("""
        <View><Image name="img" value="$image"/>
          <KeyPointLabels name="kp" toName="img">
            <Label value="tail"/><Label value="nose" model_index="1"/><Label value="eye" model_index="0"/>
          </KeyPointLabels></View>""")
    assert config.keypoint_order() == ["eye", "nose", "tail"]


def test_errors_say_what_is_wrong():
    with pytest.raises(LabelConfigError, match="not valid XML"):
        LabelConfig.parse("<View><Image name='x'")
    with pytest.raises(LabelConfigError, match="label 'car': expected a whole number, got 'one'"):
        LabelConfig.parse('<View><RectangleLabels name="b" toName="i"><Label value="car" category="one"/>'
                          "</RectangleLabels></View>")
    with pytest.raises(LabelConfigError, match="category 3 is used by two labels"):
        number_classes([LabelSpec("a", 3), LabelSpec("b", 3)])
