"""The world's vocabulary — the ONE place that defines colors, shapes and materials.

It is CLEVRER's vocabulary (Yi et al., 2020, "CLEVRER: CoLlision Events for Video REpresentation
and Reasoning"): 8 colors, 3 shapes, 2 materials, so that questions and names transfer between
our procedural clips and CLEVRER. Our world is 2-D, so each 3-D shape maps to a 2-D shape that is
distinguishable at 64x64 (objects are ~9-11 px across there):
  sphere   -> a disc (pymunk Circle; it rolls in the side view)
  cube     -> a square (pymunk box Poly; it slides/tumbles)
  cylinder -> a hexagon with a dark inner ring (pymunk hexagon Poly; the ring is the "cap" of
              the cylinder and keeps it apart from the disc when blurred by H.264 + yuv420p)
Materials change physics (elasticity, density, friction) and have a visible cue: metal objects
carry a white specular highlight dot (upper left, fixed light direction), rubber ones are matte.
RGB values are CLEVR's render palette. All lengths are in world units of a 64-unit canvas
(1 unit = 1 pixel at 64x64).
"""

from __future__ import annotations

COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SHAPES: tuple[str, ...] = ("sphere", "cube", "cylinder")
MATERIALS: tuple[str, ...] = ("rubber", "metal")

# Size of each shape (world units): sphere radius, cube half-side, hexagon circumradius. Chosen so
# all three cover a similar area (~80 px^2 at 64x64) and none is identifiable by size alone.
SHAPE_SIZE: dict[str, float] = {"sphere": 5.0, "cube": 4.5, "cylinder": 5.3}

# Physical parameters per material. Metal is denser and bouncier (steel vs rubber restitution
# ~0.8 vs ~0.5) and slipperier; friction matters in the side view (rolling vs sliding).
MATERIAL_PHYSICS: dict[str, dict[str, float]] = {
    "rubber": {"elasticity": 0.55, "density": 1.0, "friction": 0.9},
    "metal": {"elasticity": 0.85, "density": 2.5, "friction": 0.35},
}

# Scene colours (not part of the object vocabulary): picked to contrast every object colour.
BACKGROUND_TABLE = (214, 210, 200)
BACKGROUND_SIDE = (200, 222, 236)
STATIC_COLOR = (35, 35, 40)          # walls, floor, ramps, ledges
OCCLUDER_COLOR = (236, 150, 160)     # the screen in the side view (pink: no object has it)
OCCLUDER_EDGE = (150, 80, 90)
AGENT_COLOR = (250, 250, 250)        # planning: the agent puck (white, not an object colour)
GOAL_COLOR = (60, 200, 90)           # planning: goal ring
HIGHLIGHT = (255, 255, 255)

# Hold-out (color, shape) combinations for the test_ood split (compositional generalisation, as
# in CLEVR-CoGenT): never used by train/val/test objects, every test_ood clip contains one.
OOD_COMBOS: tuple[tuple[str, str], ...] = (
    ("red", "cylinder"),
    ("blue", "cube"),
    ("yellow", "sphere"),
    ("green", "cylinder"),
)


# Static scene elements a scene's annotations name ("scene": {"statics": [...], "occluder": box}):
# segments (wall, floor, ramp, ledge; end points a, b) and the side view's occluder (a box). Their
# order is the one-hot order of the static slots (perception's object head, the VoE oracle bench).
STATIC_KINDS: tuple[str, ...] = ("wall", "floor", "ramp", "ledge", "occluder")


def static_elements(scene: dict) -> list[tuple[str, list[float]]]:
    """A scene annotation's static elements as (kind, [x0, y0, x1, y1]) in world units: a segment's
    end points, the occluder's box. Raises ValueError on a kind outside STATIC_KINDS."""
    elems = [(st["kind"], [*st["a"], *st["b"]]) for st in scene.get("statics", [])]
    if scene.get("occluder"):
        elems.append(("occluder", [float(v) for v in scene["occluder"]]))
    for kind, _ in elems:
        if kind not in STATIC_KINDS:
            raise ValueError(f"unknown static kind {kind!r} (known: {', '.join(STATIC_KINDS)})")
    return elems


def describe(color: str | None, material: str | None, shape: str | None) -> str:
    """Noun phrase in CLEVRER word order: "red metal cube"; missing parts are left out."""
    parts = [p for p in (color, material, shape) if p]
    if shape is None:
        parts.append("object")
    return " ".join(parts)
