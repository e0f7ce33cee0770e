"""What several formats share: their writer bases and helpers. A format module imports these and the
writer interface (`lsflow.core.formats.base`), never another format's module.

- `records`: Label Studio's flat per-annotation records (JSON_MIN, CSV/TSV; the annotator of ASR_MANIFEST);
- `text_spans`: tokenized texts with their entity spans (CONLL2003, SPACY);
- `vision`: image tasks as pixel shapes, image copies, the task → files mapping (COCO, VOC, YOLO, masks);
- `ultralytics`: the YOLO family's layout, splits, checks and its one accounting loop over pure row functions;
- `masks`: brush masks as image-sized arrays (BRUSH_TO_NUMPY, BRUSH_TO_PNG).
"""
