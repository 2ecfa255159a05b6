"""Procedural pictures shared by the demo dataset (`make_demo_dataset.py`) and the
backbone's pretraining set (`pretrain_backbone.py`): outline shapes, two-tone textures,
background scenes, and objects made of parts (a body, a smaller head, optional limbs).

Everything is drawn in float RGB (0..255) on numpy arrays from an explicit
`np.random.Generator`, so a seed gives the same picture on every machine."""
import colorsys
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

SUPERSAMPLE = 4                 # anti-aliased shape edges
CIRCLE_POINTS = 48
PIXEL_NOISE = 4.0               # grey levels of sensor noise added to a finished picture


# ----------------------------------------------------------------- shapes

def _polar(radius_fn):
    t = np.linspace(0.0, 2 * np.pi, CIRCLE_POINTS * 2, endpoint=False)
    r = radius_fn(t)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _star(points, inner):
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.tile([1.0, inner], points)[:, None]
    return radii * np.stack([np.cos(angles), np.sin(angles)], 1)


def _regular(sides, phase=-np.pi / 2):
    angles = phase + np.arange(sides) * 2 * np.pi / sides
    return np.stack([np.cos(angles), np.sin(angles)], 1)


def _unit_shapes():
    """Outlines of radius about 1 around 0: [outer] or [outer, cut-out]."""
    circle = _polar(lambda t: np.ones_like(t))
    c, s = np.cos(np.linspace(0, 2 * np.pi, CIRCLE_POINTS, endpoint=False)), \
        np.sin(np.linspace(0, 2 * np.pi, CIRCLE_POINTS, endpoint=False))
    a = 0.34
    cross = np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a],
                      [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]])
    return {
        "disc": [circle],
        "ring": [circle, 0.5 * circle],
        "triangle": [np.array([[0.0, -1.0], [0.95, 0.8], [-0.95, 0.8]])],
        "square": [_regular(4, np.pi / 4)],
        "diamond": [np.array([[0.0, -1.0], [0.6, 0.0], [0.0, 1.0], [-0.6, 0.0]])],
        "pentagon": [_regular(5)],
        "hexagon": [_regular(6)],
        "star": [_star(5, 0.45)],
        "star4": [_star(4, 0.4)],
        "cross": [cross],
        "rounded_box": [np.stack([np.sign(c) * np.abs(c) ** (1 / 3),
                                  0.7 * np.sign(s) * np.abs(s) ** (1 / 3)], 1)],
        "crescent": [circle, 0.85 * circle + [0.45, 0.0]],
        "drop": [_polar(lambda t: 0.75 + 0.25 * np.cos(t))],
        "clover": [_polar(lambda t: 0.7 + 0.3 * np.cos(3 * t))],
        "flower": [_polar(lambda t: 0.75 + 0.25 * np.cos(6 * t))],
        "gear": [_polar(lambda t: 0.85 + 0.15 * np.sign(np.sin(8 * t)))],
        "blob": [_polar(lambda t: 0.9 + 0.1 * np.cos(2 * t) + 0.06 * np.sin(5 * t))],
        "bar": [np.array([[-1.0, -0.18], [1.0, -0.18], [1.0, 0.18], [-1.0, 0.18]])],
        "arrow": [np.array([[1.0, 0.0], [0.2, -0.7], [0.2, -0.3], [-1.0, -0.3], [-1.0, 0.3],
                            [0.2, 0.3], [0.2, 0.7]])],
        "heart": [_polar(lambda t: 0.55 + 0.45 * np.abs(np.sin(t - np.pi / 2)) ** 0.5)],
    }


UNIT_SHAPES = _unit_shapes()
TEXTURES = ("plain", "stripes", "checker", "rings", "grid", "gradient", "spots", "dots",
            "zigzag", "waves", "hatch", "noise")


class Pose(NamedTuple):
    cx: float
    cy: float
    radius: float
    aspect: float
    angle: float


def posed_outlines(shape, pose):
    """The unit outlines of `shape` scaled, stretched, rotated and moved to `pose` (x, y px)."""
    scale = np.array([pose.radius * np.sqrt(pose.aspect), pose.radius / np.sqrt(pose.aspect)])
    c, s = np.cos(pose.angle), np.sin(pose.angle)
    rotation = np.array([[c, s], [-s, c]])
    return [(outline * scale) @ rotation + [pose.cx, pose.cy] for outline in UNIT_SHAPES[shape]]


def coverage(outlines, height, width):
    """Fraction of each pixel inside the shape (first outline filled, later ones cut out)."""
    canvas = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    for i, outline in enumerate(outlines):
        draw.polygon([tuple(p) for p in outline * SUPERSAMPLE], fill=255 if i == 0 else 0)
    return np.asarray(canvas.reduce(SUPERSAMPLE), np.float32) / 255.0


def object_frame(height, width, pose):
    """Pixel-centre coordinates (u, v) in the rotated frame of `pose`."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    dx, dy = x - pose.cx, y - pose.cy
    c, s = np.cos(pose.angle), np.sin(pose.angle)
    return dx * c + dy * s, -dx * s + dy * c


# ----------------------------------------------------------------- colours and textures

def hsv_colour(hue, saturation, value):
    """RGB in 0..255 (float) from a hue in degrees."""
    return 255.0 * np.array(colorsys.hsv_to_rgb((hue % 360.0) / 360.0, saturation, value))


class Look(NamedTuple):
    """The appearance of a part: a hue family and a texture mixing two of its tones."""
    hue: float          # degrees
    texture: str
    saturation: tuple = (0.55, 0.9)
    value: tuple = (0.65, 0.95)


def smooth_noise(shape, sigma, rng):
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return noise / (noise.std() + 1e-8)


def texture_pattern(kind, u, v, radius, rng):
    """A pattern in [0, 1] over the (u, v) frame that mixes a part's two tones."""
    period = rng.uniform(4.0, 8.0)
    if kind == "plain":
        return np.zeros_like(u)
    if kind == "stripes":
        return 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    if kind == "checker":
        return (np.floor(u / period) + np.floor(v / period)) % 2
    if kind == "rings":
        return 0.5 + 0.5 * np.cos(2 * np.pi * np.hypot(u, v) / period)
    if kind == "grid":
        return ((np.mod(u, period) < 1.5) | (np.mod(v, period) < 1.5)).astype(np.float64)
    if kind == "gradient":
        return np.clip(0.5 + 0.5 * v / max(radius, 1.0), 0.0, 1.0)
    if kind == "spots":
        return (smooth_noise(u.shape, 1.2, rng) > 1.0).astype(np.float64)
    if kind == "dots":
        return ((np.mod(u, period) - period / 2) ** 2 + (np.mod(v, period) - period / 2) ** 2
                < (period / 4) ** 2).astype(np.float64)
    if kind == "zigzag":
        return (np.mod(u + 0.8 * np.abs(np.mod(v, period) - period / 2), period)
                < period / 2).astype(np.float64)
    if kind == "waves":
        return 0.5 + 0.5 * np.sin(2 * np.pi * (u + 2.0 * np.sin(2 * np.pi * v / (3 * period)))
                                  / period)
    if kind == "hatch":
        return (np.mod(u + v, period) < period / 3).astype(np.float64)
    if kind == "noise":
        return np.clip(0.5 + 0.35 * smooth_noise(u.shape, 1.5, rng), 0.0, 1.0)
    raise ValueError(f"unknown texture {kind!r}")


def part_colours(look, pose, height, width, rng, hue_jitter=12.0):
    """(H, W, 3) colours of a part with `look`: two tones of its hue mixed by its texture."""
    hue = look.hue + rng.uniform(-hue_jitter, hue_jitter)
    saturation, value = rng.uniform(*look.saturation), rng.uniform(*look.value)
    light = hsv_colour(hue, saturation, value)
    dark = hsv_colour(hue + rng.uniform(-10, 10), 0.7 * saturation, 0.55 * value)
    u, v = object_frame(height, width, pose)
    mix = texture_pattern(look.texture, u, v, pose.radius, rng)[..., None]
    return light * (1 - mix) + dark * mix


def blend(image, colours, alpha):
    return image * (1 - alpha[..., None]) + colours * alpha[..., None]


# ----------------------------------------------------------------- scenes

SCENES = ("sky", "water", "grass", "road", "indoor", "sand", "clutter")


def _tile(colour, height, width):
    return np.tile(np.asarray(colour, np.float64), (height, width, 1))


def _vertical_ramp(height, width):
    return np.repeat(np.linspace(0.0, 1.0, height)[:, None], width, axis=1)


def scene_background(kind, height, width, rng):
    """A background picture of one scene kind (float RGB, H x W x 3)."""
    y_ramp = _vertical_ramp(height, width)[..., None]
    if kind == "sky":
        top = hsv_colour(rng.uniform(195, 220), rng.uniform(0.35, 0.6), rng.uniform(0.8, 0.95))
        bottom = hsv_colour(rng.uniform(190, 215), rng.uniform(0.1, 0.25), rng.uniform(0.9, 1.0))
        image = top * (1 - y_ramp) + bottom * y_ramp
        clouds = np.clip(smooth_noise((height, width), 7.0, rng) - 0.6, 0, None)
        return image + 45.0 * clouds[..., None]
    if kind == "water":
        image = _tile(hsv_colour(rng.uniform(190, 225), rng.uniform(0.45, 0.7),
                                 rng.uniform(0.4, 0.65)), height, width)
        u, v = object_frame(height, width, Pose(0, 0, 1, 1, rng.uniform(-0.15, 0.15)))
        period = rng.uniform(5, 9)
        waves = np.sin(2 * np.pi * (v + 1.5 * np.sin(2 * np.pi * u / (4 * period))) / period)
        return image + rng.uniform(12, 25) * waves[..., None] \
            + 8.0 * smooth_noise((height, width), 2.0, rng)[..., None]
    if kind == "grass":
        image = _tile(hsv_colour(rng.uniform(85, 125), rng.uniform(0.45, 0.7),
                                 rng.uniform(0.35, 0.6)), height, width)
        blades = ndimage.gaussian_filter(rng.standard_normal((height, width)), (2.5, 0.6))
        blades /= blades.std()
        return image + 22.0 * blades[..., None] * np.array([0.6, 1.0, 0.4]) \
            + 10.0 * smooth_noise((height, width), 6.0, rng)[..., None]
    if kind == "road":
        image = _tile(hsv_colour(rng.uniform(0, 360), rng.uniform(0.0, 0.08),
                                 rng.uniform(0.3, 0.5)), height, width)
        image += 10.0 * smooth_noise((height, width), 0.7, rng)[..., None]
        u, v = object_frame(height, width, Pose(rng.uniform(0, width), rng.uniform(0, height),
                                                1, 1, rng.uniform(0, np.pi)))
        dashes = (np.abs(v) < 1.5) & (np.mod(u, 18.0) < 10.0)
        paint = hsv_colour(rng.choice([50.0, 0.0]), rng.choice([0.0, 0.7]), 0.9)
        return blend(image, paint, 0.8 * dashes.astype(np.float32))
    if kind == "indoor":
        wall = hsv_colour(rng.uniform(20, 45), rng.uniform(0.15, 0.35), rng.uniform(0.6, 0.8))
        floor = hsv_colour(rng.uniform(15, 35), rng.uniform(0.35, 0.55), rng.uniform(0.3, 0.5))
        horizon = rng.uniform(0.55, 0.8)
        image = np.where(y_ramp < horizon, wall, floor)
        u, v = object_frame(height, width, Pose(0, 0, 1, 1, 0.0))
        period = rng.uniform(10, 16)
        panels = ((np.mod(u, period) < 1.0) | (np.mod(v, period) < 1.0)) & (y_ramp[..., 0] < horizon)
        planks = (np.mod(v, 5.0) < 1.0) & (y_ramp[..., 0] >= horizon)
        return image - 18.0 * (panels | planks)[..., None]
    if kind == "sand":
        image = _tile(hsv_colour(rng.uniform(35, 50), rng.uniform(0.3, 0.45),
                                 rng.uniform(0.7, 0.85)), height, width)
        return image + 12.0 * smooth_noise((height, width), 0.8, rng)[..., None] \
            + 10.0 * smooth_noise((height, width), 8.0, rng)[..., None]
    if kind == "clutter":
        image = _tile(hsv_colour(rng.uniform(0, 360), rng.uniform(0.05, 0.35),
                                 rng.uniform(0.35, 0.75)), height, width)
        blotches = ndimage.gaussian_filter(rng.standard_normal((height, width, 3)), (6, 6, 0))
        image += 18.0 * blotches / blotches.std()
        u, _ = object_frame(height, width, Pose(0.0, 0.0, 1.0, 1.0, rng.uniform(0, np.pi)))
        stripes = np.sin(2 * np.pi * u / rng.uniform(4, 16))
        return image + rng.uniform(8, 30) * stripes[..., None] \
            * hsv_colour(rng.uniform(0, 360), 0.5, 1.0) / 255.0
    raise ValueError(f"unknown scene {kind!r}")


# ----------------------------------------------------------------- objects made of parts

class PartSpec(NamedTuple):
    """One part of an object: its outline and look, its size relative to the body's
    radius and where it sits (angle around the body, distance in body radii)."""
    shape: str
    look: Look
    size: float
    angle: float
    distance: float
    aspect: float = 1.0


class Drawn(NamedTuple):
    coverages: list     # per part (H, W) float32, in drawing order
    poses: list         # per part Pose


def part_pose(body, part, rng):
    """Where a part sits: at `distance` body radii from the body's centre, in the
    direction `angle` of the body's frame (stretched as the body is)."""
    sx, sy = np.sqrt(body.aspect), 1 / np.sqrt(body.aspect)
    dx = part.distance * body.radius * sx * np.cos(part.angle)
    dy = part.distance * body.radius * sy * np.sin(part.angle)
    c, s = np.cos(body.angle), np.sin(body.angle)
    cx = body.cx + dx * c - dy * s
    cy = body.cy + dx * s + dy * c
    return Pose(cx, cy, part.size * body.radius, part.aspect,
                body.angle + part.angle + rng.uniform(-0.3, 0.3))


def draw_parts(parts, body_pose, height, width, rng):
    """Coverage of every part of an object whose first part is the body at `body_pose`."""
    poses = [body_pose] + [part_pose(body_pose, p, rng) for p in parts[1:]]
    coverages = [coverage(posed_outlines(p.shape, pose), height, width)
                 for p, pose in zip(parts, poses)]
    return Drawn(coverages, poses)


def paint_parts(image, parts, drawn, rng):
    """Blend each part's colours into `image` with its coverage (later parts on top)."""
    height, width = image.shape[:2]
    for part, pose, cov in zip(parts, drawn.poses, drawn.coverages):
        image = blend(image, part_colours(part.look, pose, height, width, rng), cov)
    return image


def union_coverage(coverages):
    return np.max(np.stack(coverages), axis=0)


def finish(image, rng, noise=PIXEL_NOISE):
    """Sensor noise, clipped and rounded to uint8 RGB."""
    image = image + rng.normal(0.0, noise, image.shape)
    return np.round(np.clip(image, 0, 255)).astype(np.uint8)
