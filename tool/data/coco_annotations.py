"""Writing COCO instance annotations from a VOC-style label map (0 background, c+1 VOC
class c, 255 ignored): the 20 VOC classes as COCO categories, pixel-exact polygons,
uncompressed and compressed RLE, and the records of an instances JSON.

A label map holds classes, not instances: the instances written are the connected
components (8-connected) of each class, so one object cut in two by an occluder becomes
two instances. The ignored pixels (255) become crowd regions (iscrowd 1, uncompressed RLE
as COCO writes crowds) of the class of their nearest object pixel: tool/data/coco.py's
`label_map` maps pixels that only a crowd region covers back to 255, and the crowd
classes are classes the image has anyway."""
import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from tool.core.io import IGNORE_LABEL, InputError
from tool.data.coco import COCO_CATEGORIES
from tool.data.voc import VOC_CLASSES

# VOC names that COCO spells differently; the other 14 VOC classes have COCO's name
VOC_TO_COCO_NAME = {"aeroplane": "airplane", "diningtable": "dining table",
                    "motorbike": "motorcycle", "pottedplant": "potted plant",
                    "sofa": "couch", "tvmonitor": "tv"}
_CATEGORY_ID = {name: cat_id for cat_id, name in COCO_CATEGORIES}
VOC_TO_COCO_CATEGORY = tuple(_CATEGORY_ID[VOC_TO_COCO_NAME.get(name, name)]
                             for name in VOC_CLASSES)  # COCO category id per VOC class index

# COCO 2014's supercategories: (last category id of the group, its name), in id order
SUPERCATEGORY_RUNS = ((1, "person"), (9, "vehicle"), (15, "outdoor"), (25, "animal"),
                      (33, "accessory"), (43, "sports"), (51, "kitchen"), (61, "food"),
                      (70, "furniture"), (77, "electronic"), (82, "appliance"),
                      (90, "indoor"))

POLYGON, RLE, COMPRESSED_RLE = "polygon", "rle", "compressed_rle"
SEGMENTATION_KINDS = (POLYGON, RLE, COMPRESSED_RLE)  # annotation id k gets kind k % 3
EIGHT_CONNECTED = np.ones((3, 3), bool)

# boundary directions clockwise on screen (y down): east, south, west, north
_STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1))


def supercategory(category_id):
    return next(name for last, name in SUPERCATEGORY_RUNS if category_id <= last)


def coco_categories():
    """The `categories` list of an instances JSON: COCO's 80, with their real ids."""
    return [{"id": cat_id, "name": name, "supercategory": supercategory(cat_id)}
            for cat_id, name in COCO_CATEGORIES]


def _boundary_edges(mask):
    """{(start corner (x, y), direction): end corner} of the unit edges between mask and
    non-mask pixels, oriented with the mask on their right (outer outlines run clockwise
    on screen, holes anticlockwise). Corner (x, y) is the top-left corner of pixel (y, x)."""
    padded = np.pad(mask, 1)
    inside = padded[1:-1, 1:-1]
    neighbours = (padded[:-2, 1:-1], padded[1:-1, 2:], padded[2:, 1:-1], padded[1:-1, :-2])
    starts = ((0, 0), (1, 0), (1, 1), (0, 1))  # of the edge facing each neighbour
    edges = {}
    for direction, (outside, (sx, sy)) in enumerate(zip(neighbours, starts)):
        dx, dy = _STEPS[direction]
        for y, x in zip(*np.nonzero(inside & ~outside)):
            start = (int(x) + sx, int(y) + sy)
            edges[start, direction] = (start[0] + dx, start[1] + dy)
    return edges


def _next_edge(edges, corner, direction):
    """The edge that follows one arriving at `corner` heading `direction`: a right turn
    if there is one, else straight on, else a left turn. Where two pixels touch only at
    a corner this keeps them apart: outer outlines follow the 4-connected pieces (an
    outline may touch itself at such a corner, which pycocotools fills correctly)."""
    return next((corner, d % 4) for d in (direction + 1, direction, direction + 3)
                if (corner, d % 4) in edges)


def boundary_loops(mask):
    """The outlines of a boolean mask along pixel edges: lists of the corners (x, y) where
    the outline turns. Outer outlines (of the 4-connected pieces) run clockwise on
    screen, hole outlines anticlockwise (see `signed_area`)."""
    edges = _boundary_edges(mask)
    loops, seen = [], set()
    for first in edges:
        if first in seen:
            continue
        corners, edge = [], first
        while True:
            seen.add(edge)
            end = edges[edge]
            following = _next_edge(edges, end, edge[1])
            if following[1] != edge[1]:
                corners.append(end)
            if following == first:
                break
            edge = following
        loops.append(corners)
    return loops


def signed_area(corners):
    """Shoelace area of an outline in screen coordinates: > 0 for an outer outline of
    `boundary_loops`, < 0 for a hole."""
    xy = np.asarray(corners, np.int64)
    x, y = xy[:, 0], xy[:, 1]
    return int(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) // 2


def mask_polygons(mask):
    """COCO polygons ([[x0, y0, x1, y1, ...], ...], pixel-corner coordinates) whose union
    is exactly the mask, or None when the mask has a hole (a union of polygons cannot
    leave one out)."""
    loops = boundary_loops(mask)
    if any(signed_area(loop) < 0 for loop in loops):
        return None
    return [[float(v) for corner in loop for v in corner] for loop in loops]


def uncompressed_rle(mask):
    """COCO's uncompressed RLE: run lengths of the column-major mask, starting with a
    (possibly empty) run of zeros."""
    flat = np.asarray(mask, bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": list(mask.shape)}


def compressed_rle(mask):
    """COCO's compressed RLE (pycocotools' `counts` string, as ASCII)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"counts": rle["counts"].decode("ascii"), "size": [int(v) for v in rle["size"]]}


def segmentation(mask, kind):
    """The `segmentation` field of one mask in `kind` (a SEGMENTATION_KINDS entry);
    a polygon of a mask with a hole falls back to compressed RLE. Returns (field, kind
    written)."""
    if kind == POLYGON:
        polygons = mask_polygons(mask)
        if polygons is not None:
            return polygons, POLYGON
        kind = COMPRESSED_RLE
    return (uncompressed_rle(mask) if kind == RLE else compressed_rle(mask)), kind


def mask_bbox(mask):
    """COCO bbox [x, y, width, height] of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1)]


def label_regions(label, source):
    """[(VOC class index, mask, crowd)] of a VOC label map: each connected component of
    each class (crowd False), then per class the ignored pixels nearest to it (crowd True)."""
    bad = (label > len(VOC_CLASSES)) & (label != IGNORE_LABEL)
    if bad.any():
        raise InputError(f"{source}: label value {int(label[bad][0])} is no VOC class")
    objects = (label > 0) & (label != IGNORE_LABEL)
    ignored = label == IGNORE_LABEL
    if ignored.any() and not objects.any():
        raise InputError(f"{source}: ignored pixels (255) but no object to give them a class")
    regions = []
    for value in np.unique(label[objects]):
        components, count = ndimage.label(label == value, EIGHT_CONNECTED)
        regions += [(int(value) - 1, components == k, False) for k in range(1, count + 1)]
    if ignored.any():
        rows, cols = ndimage.distance_transform_edt(~objects, return_distances=False,
                                                    return_indices=True)
        nearest = label[rows, cols]
        for value in np.unique(nearest[ignored]):
            regions.append((int(value) - 1, ignored & (nearest == value), True))
    return regions


def label_annotations(label, image_id, first_id, source):
    """[(annotation, segmentation kind written)] of one VOC label map for an instances
    JSON, with ids first_id, first_id+1, ...: instances in segmentation kind id % 3
    (polygon, uncompressed RLE, compressed RLE), crowd regions in uncompressed RLE."""
    annotations = []
    for offset, (voc_class, mask, crowd) in enumerate(label_regions(label, source)):
        ann_id = first_id + offset
        kind = RLE if crowd else SEGMENTATION_KINDS[ann_id % len(SEGMENTATION_KINDS)]
        field, written = segmentation(mask, kind)
        annotations.append(({"id": ann_id, "image_id": image_id,
                            "category_id": VOC_TO_COCO_CATEGORY[voc_class],
                            "segmentation": field, "area": float(mask.sum()),
                            "bbox": mask_bbox(mask), "iscrowd": int(crowd)}, written))
    return annotations
