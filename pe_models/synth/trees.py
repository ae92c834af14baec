"""Branching tubes: pulmonary arteries, veins and airways grown into the lungs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from pe_models.synth.grid import Segment


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _turn(direction: np.ndarray, angle_rad: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate ``direction`` by ``angle_rad`` about a random perpendicular axis."""
    random = rng.normal(size=3)
    axis = _unit(random - (random @ direction) * direction)
    return _unit(direction * np.cos(angle_rad) + axis * np.sin(angle_rad))


def grow_tree(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    radius: float,
    *,
    level: int,
    side: str,
    inside: Callable[[np.ndarray], bool],
    pull_towards: np.ndarray,
    min_radius: float,
    max_segments: int = 1400,
) -> list[Segment]:
    """Grow a bifurcating tree whose branches stay inside ``inside``.

    Each branch is 4-7 radii long and ends in a main daughter that carries on nearly straight
    and barely thinner, and a side branch turning 35-65° away; their radii obey Murray's law.
    Branches that would leave the lung are shortened or bent towards ``pull_towards``.

    Parameters
    ----------
    start, direction
        Root point (x, y, z mm) and initial direction.
    radius
        Root radius in mm.
    level
        Generation of the root (1 = lobar for arteries).
    inside
        Whether a point lies where branches may grow (the lung).
    min_radius
        Branches thinner than this are not grown (about one voxel).

    Returns
    -------
    list of Segment
        Breadth first: root, its daughters, their daughters, ...
    """
    segments: list[Segment] = []
    queue = deque([(np.asarray(start, float), _unit(np.asarray(direction, float)), radius, level)])
    pull_weight = 0.08  # mostly free: branches fill the lung out to the pleura
    while queue and len(segments) < max_segments:
        origin, heading, r, generation = queue.popleft()
        length = r * rng.uniform(4.0, 7.0) + 3.0
        end = _fit_inside(rng, origin, heading, length, inside, pull_towards)
        if end is None:
            continue
        heading = _unit(end - origin)
        r_end = r * 0.95
        segments.append(Segment(origin, end, r, r_end, generation, side))
        # Monopodial: the main branch carries on barely thinner and gives off a side branch,
        # the two together obeying Murray's law (r³ = r_main³ + r_side³).
        big = r_end * rng.uniform(0.85, 0.93)
        small = (max(r_end**3 - big**3, (0.35 * r_end) ** 3)) ** (1 / 3)
        pull = _unit(pull_towards - end)
        for child_radius, angle in ((big, rng.uniform(0.1, 0.35)), (small, rng.uniform(0.6, 1.1))):
            if child_radius >= min_radius:
                child_heading = _unit(_turn(heading, angle, rng) + pull_weight * pull)
                queue.append((end, child_heading, child_radius, generation + 1))
    return segments


def _fit_inside(
    rng: np.random.Generator,
    origin: np.ndarray,
    heading: np.ndarray,
    length: float,
    inside: Callable[[np.ndarray], bool],
    pull_towards: np.ndarray,
) -> np.ndarray | None:
    """End point of a branch that stays in the lung: shorten it, then bend it inwards."""
    inward = _unit(pull_towards - origin)

    def candidates() -> Iterator[np.ndarray]:  # cheapest first, made only when needed
        yield heading
        for bend in (0.5, 1.0, 2.0):
            yield _unit(heading + bend * inward)
        for _ in range(3):
            yield _turn(heading, rng.uniform(0.3, 1.2), rng)

    for direction in candidates():
        for shrink in (1.0, 0.6, 0.35):
            end = origin + direction * length * shrink
            if inside(end):
                return end
    return None
