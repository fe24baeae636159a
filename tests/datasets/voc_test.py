import numpy as np
import pytest

from defect_aux_net.datasets.voc import parse_voc_xml

_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotation>
  <size><width>200</width><height>100</height><depth>1</depth></size>
  <object><name>pit</name>
    <bndbox><xmin>20</xmin><ymin>10</ymin><xmax>60</xmax><ymax>50</ymax></bndbox></object>
  <object><name>crack</name>
    <bndbox><xmin>0</xmin><ymin>0</ymin><xmax>200</xmax><ymax>100</ymax></bndbox></object>
</annotation>
"""


def test_boxes_are_divided_by_the_image_size():
    annotation = parse_voc_xml(_XML.encode(), ["crack", "pit"], "a.xml", (100, 200))
    np.testing.assert_allclose(
        annotation.bboxes, [[0.1, 0.1, 0.5, 0.3], [0.0, 0.0, 1.0, 1.0]], rtol=1e-6
    )
    np.testing.assert_array_equal(annotation.labels, [1, 0])
    assert (annotation.height, annotation.width) == (100, 200)


def test_size_from_the_image_where_the_xml_has_none():
    xml = _XML.replace("<size><width>200</width><height>100</height><depth>1</depth></size>", "")
    annotation = parse_voc_xml(xml, ["crack", "pit"], "a.xml", (100, 200))
    np.testing.assert_allclose(annotation.bboxes[0], [0.1, 0.1, 0.5, 0.3], rtol=1e-6)
    with pytest.raises(ValueError, match="no <size>"):
        parse_voc_xml(xml, ["crack", "pit"], "a.xml")


@pytest.mark.parametrize(
    "xml, message",
    [
        (_XML.replace("<name>pit", "<name>dent"), "unknown class name 'dent'"),
        (_XML.replace("<xmax>60", "<xmax>260"), r"outside the 200 x 100"),
        (_XML.replace("<xmax>60", "<xmax>20"), "empty or outside"),
        (_XML.replace("<ymin>10</ymin>", ""), "has no <ymin>"),
        (_XML.replace("</annotation>", ""), "not valid VOC XML"),
    ],
)
def test_bad_annotations_name_the_file_and_value(xml, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_voc_xml(xml, ["crack", "pit"], "ANNOTATIONS/a.xml", (100, 200))
    assert "ANNOTATIONS/a.xml" in str(error.value)


def test_size_that_differs_from_the_image_is_an_error():
    with pytest.raises(ValueError, match="says 100 x 200 .* image is 120 x 200"):
        parse_voc_xml(_XML, ["crack", "pit"], "a.xml", (120, 200))
