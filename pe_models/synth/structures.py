"""Heart, bones, great vessels, vessel and airway trees, and the table of the phantom."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pe_models.synth.anatomy import Anatomy, Tissue
from pe_models.synth.grid import Grid, Segment, ellipsoid, paint_tube, tube_field
from pe_models.synth.trees import grow_tree

ARTERY_LOBES = {
    "right": ((-0.45, -0.25, 1.0), (-0.6, -0.9, -0.35), (-0.35, 0.55, -1.0)),
    "left": ((0.45, -0.25, 1.0), (0.6, -0.9, -0.35), (0.35, 0.55, -1.0)),
}
"""Directions (x, y, z) of the lobar arteries: upper, middle / lingula, lower."""

VEIN_DIRECTIONS = {
    "right": ((-1.0, -0.1, 0.7), (-1.0, 0.3, -0.6)),
    "left": ((1.0, -0.1, 0.7), (1.0, 0.3, -0.6)),
}
"""Directions of the superior and inferior pulmonary veins leaving the left atrium."""


@dataclass(frozen=True)
class VesselSet:
    """Tubes of one phantom. Arteries are the pulmonary arterial tree (PE lives there)."""

    arteries: tuple[Segment, ...]
    veins: tuple[Segment, ...]
    airways: tuple[Segment, ...]
    systemic: tuple[tuple[Segment, Tissue], ...]  # aorta and SVC with their blood label


def _polyline(points: list[tuple[float, float, float]], r0: float, r1: float) -> list[Segment]:
    radii = np.linspace(r0, r1, len(points))
    return [
        Segment(np.array(a, float), np.array(b, float), float(ra), float(rb))
        for a, b, ra, rb in zip(points, points[1:], radii, radii[1:], strict=False)
    ]


def build_vessels(rng: np.random.Generator, anatomy: Anatomy, *, min_radius: float) -> VesselSet:
    """Lay out the great vessels and grow arterial, venous and airway trees into the lungs."""
    hx, hy, hz = anatomy.heart_centre
    _ax, ay, az = anatomy.heart_semi_axes
    y_trachea = anatomy.spine_y - 42.0
    in_lung = anatomy.lung_lookup()
    lung_centres = {
        side: np.array([sign * 0.55 * anatomy.cavity_semi_axes[0], anatomy.cavity_centre_y, hz / 2])
        for side, sign in (("right", -1.0), ("left", 1.0))
    }

    trunk_r = rng.uniform(12.0, 15.0)
    bifurcation = np.array([8.0, y_trachea - 22.0, -12.0])
    trunk = Segment(
        np.array([hx - 8, hy - 0.55 * ay, hz + 0.55 * az]), bifurcation, trunk_r, trunk_r
    )
    hila = {
        "right": np.array([-52.0, y_trachea - 6.0, -22.0]),
        "left": np.array([50.0, y_trachea + 4.0, -12.0]),
    }
    main_r = trunk_r * rng.uniform(0.7, 0.8)
    arteries = [trunk]
    arteries += [
        Segment(bifurcation, hila["right"], main_r, main_r * 0.9, 0, "right"),
        Segment(
            bifurcation, np.array([30.0, y_trachea - 14.0, -2.0]), main_r, main_r * 0.95, 0, "left"
        ),
        Segment(
            np.array([30.0, y_trachea - 14.0, -2.0]),
            hila["left"],
            main_r * 0.95,
            main_r * 0.9,
            0,
            "left",
        ),
    ]
    for side, directions in ARTERY_LOBES.items():
        for direction in directions:
            arteries += grow_tree(
                rng,
                hila[side],
                np.array(direction),
                main_r * rng.uniform(0.5, 0.62),
                level=1,
                side=side,
                inside=in_lung,
                pull_towards=lung_centres[side],
                min_radius=min_radius,
            )

    atrium = np.array([hx - 5.0, hy + 0.6 * ay, hz + 0.35 * az])
    veins: list[Segment] = []
    for side, vein_directions in VEIN_DIRECTIONS.items():
        for direction in vein_directions:
            heading = np.array(direction) / np.linalg.norm(direction)
            ostium = atrium + heading * 45.0
            vein_r = rng.uniform(6.0, 8.0)
            veins.append(Segment(atrium, ostium, vein_r, vein_r, 0, side))
            veins += grow_tree(
                rng,
                ostium,
                heading,
                vein_r * 0.85,
                level=1,
                side=side,
                inside=in_lung,
                pull_towards=lung_centres[side],
                min_radius=min_radius,
            )

    carina = np.array([0.0, y_trachea, 0.0])
    airways = [Segment(np.array([0.0, y_trachea - 8, anatomy.z_apex + 60]), carina, 9.0, 8.5)]
    for side, end, radius in (
        ("right", np.array([-38.0, y_trachea + 4, -22.0]), 6.5),
        ("left", np.array([42.0, y_trachea + 8, -34.0]), 5.5),
    ):
        airways.append(Segment(carina, end, radius, radius, 0, side))
        for direction in ARTERY_LOBES[side][::2]:
            airways += grow_tree(
                rng,
                end,
                np.array(direction),
                radius * 0.75,
                level=1,
                side=side,
                inside=in_lung,
                pull_towards=lung_centres[side],
                min_radius=max(2.0, min_radius * 2),
            )

    aorta_r = rng.uniform(13.0, 16.0)
    aorta = _polyline(
        [
            (hx - 15, hy - 5, hz + 0.6 * az),
            (-2, y_trachea - 45, 30),
            (15, y_trachea - 25, 48),
            (26, anatomy.spine_y - 30, 35),
            (26, anatomy.spine_y - 28, -400),
        ],
        aorta_r,
        aorta_r * 0.8,
    )
    esophagus = Segment(
        np.array([6.0, y_trachea + 15, 400.0]), np.array([12.0, y_trachea + 18, -400.0]), 7.5, 7.5
    )
    arch_top = np.array([12.0, y_trachea - 28, 50.0])
    supra_aortic = [
        Segment(
            arch_top + np.array([-14.0, -6.0, 0.0]),
            np.array([-20.0, y_trachea - 32, 400.0]),
            6.5,
            6.0,
        ),
        Segment(arch_top, np.array([8.0, y_trachea - 28, 400.0]), 4.0, 4.0),
        Segment(
            arch_top + np.array([12.0, 8.0, 0.0]), np.array([30.0, y_trachea - 12, 400.0]), 5.0, 5.0
        ),
    ]
    left_brachiocephalic_vein = Segment(
        np.array([60.0, y_trachea - 40, 62.0]), np.array([-28.0, y_trachea - 30, 52.0]), 6.0, 7.0
    )
    svc = _polyline(
        [(-28, y_trachea - 30, 400), (-26, y_trachea - 32, 10), (-22, hy - 5, hz + 0.8 * az)],
        10,
        11,
    )
    systemic = (
        (esophagus, Tissue.MUSCLE),
        *tuple((s, Tissue.LEFT_BLOOD) for s in (*aorta, *supra_aortic)),
        *tuple((s, Tissue.SVC_BLOOD) for s in (*svc, left_brachiocephalic_vein)),
    )
    return VesselSet(tuple(arteries), tuple(veins), tuple(airways), systemic)


def paint_heart(labels: np.ndarray, grid: Grid, anatomy: Anatomy) -> None:
    """Myocardium with right (bolus) and left chambers separated by the septum."""
    centre = np.array(anatomy.heart_centre)
    axes = np.array(anatomy.heart_semi_axes)
    outer = ellipsoid(grid, centre, axes)
    inner = ellipsoid(grid, centre, axes - 9.0)
    if outer is None or inner is None:
        return
    slices, inside = outer
    labels[slices][inside] = Tissue.MYOCARDIUM
    slices, cavity = inner
    z = grid.axis_mm(0)[slices[0]][:, None, None]
    y = grid.axis_mm(1)[slices[1]][None, :, None]
    x = grid.axis_mm(2)[slices[2]][None, None, :]
    # The septum runs obliquely: right ventricle anterior-right, left ventricle posterior-left.
    across = (x - centre[0]) * 0.6 + (y - centre[1]) * 0.8
    atrial = (y - centre[1]) * 0.45 + (z - centre[2]) * 0.9 > 0.35 * axes[2]
    region = labels[slices]
    region[cavity & (across < -4) & ~atrial] = Tissue.PA_BLOOD
    region[cavity & (across > 4) & ~atrial] = Tissue.LEFT_BLOOD
    region[cavity & atrial & (x < centre[0] - 6)] = Tissue.PA_BLOOD  # right atrium
    region[cavity & atrial & (x > centre[0] + 2)] = Tissue.LEFT_BLOOD  # left atrium


def paint_bones(labels: np.ndarray, grid: Grid, anatomy: Anatomy, rng: np.random.Generator) -> None:
    """Vertebrae with discs and canal, sternum, and ribs with anterior cartilage."""
    x = grid.axis_mm(2)[None, :]
    y = grid.axis_mm(1)[:, None]
    sy = anatomy.spine_y
    body = (x / 21.0) ** 2 + ((y - sy) / 17.0) ** 2 < 1
    marrow = (x / 18.5) ** 2 + ((y - sy) / 14.5) ** 2 < 1
    canal = x**2 + (y - sy - 26.0) ** 2 < 8.5**2
    arch = (x**2 + (y - sy - 26.0) ** 2 < 13.0**2) & ~canal
    spinous = (np.abs(x) < 4.0) & (y > sy + 36.0) & (y < sy + 60.0)
    disc_phase = rng.uniform(0, 28)
    _ax, ay = anatomy.body_semi_axes
    sternum_front = -(ay - anatomy.fat_mm) + 2.0
    sternum = (x / 16.0) ** 2 + ((y - sternum_front - 6.0) / 6.0) ** 2 < 1
    sternum_marrow = (x / 13.5) ** 2 + ((y - sternum_front - 6.0) / 3.8) ** 2 < 1
    sternum_z = (anatomy.heart_centre[2] - 0.8 * anatomy.heart_semi_axes[2], anatomy.z_apex - 25.0)
    for k, z in enumerate(grid.axis_mm(0)):
        plane = labels[k]
        in_disc = (z + disc_phase) % 28.0 < 6.0
        plane[body] = Tissue.DISC if in_disc else Tissue.CORTICAL_BONE
        if not in_disc:
            plane[marrow] = Tissue.MARROW
        plane[(arch | spinous) & (plane != Tissue.AIR)] = Tissue.CORTICAL_BONE  # inside the back
        plane[canal] = Tissue.CSF
        if sternum_z[0] < z < sternum_z[1]:
            plane[sternum] = Tissue.CORTICAL_BONE
            plane[sternum_marrow] = Tissue.MARROW

    cax, cay = anatomy.cavity_semi_axes
    for k in range(12):
        z_back = anatomy.z_apex + 5.0 - k * rng.uniform(22.0, 26.0)
        for sign in (-1.0, 1.0):
            phis = np.linspace(0.12 * np.pi, 0.9 * np.pi, 10)
            points = [
                (
                    sign * (cax + 5.0) * np.sin(phi),
                    anatomy.cavity_centre_y + (cay + 5.0) * np.cos(phi),
                    z_back - 60.0 * (phi / np.pi) ** 1.4,
                )
                for phi in phis
            ]
            for i, segment in enumerate(_polyline(points, 3.2, 2.8)):
                cartilage = i >= 7
                paint_tube(
                    labels,
                    grid,
                    segment,
                    Tissue.CARTILAGE if cartilage else Tissue.MARROW,
                    wall_mm=0.0 if cartilage else 1.5,
                    wall_value=Tissue.CORTICAL_BONE,
                )


def paint_table(labels: np.ndarray, grid: Grid, anatomy: Anatomy) -> None:
    """The scanner table: two thin curved shells under the patient."""
    x = grid.axis_mm(2)[None, :]
    y = grid.axis_mm(1)[:, None]
    top = anatomy.body_semi_axes[1] + 12.0 + 0.0008 * x**2
    shells = ((y > top) & (y < top + 4.0) | (y > top + 30.0) & (y < top + 33.0)) & (np.abs(x) < 210)
    labels[:, shells] = Tissue.TABLE


def paint_vessels(labels: np.ndarray, grid: Grid, vessels: VesselSet) -> np.ndarray:
    """Airways, veins, systemic vessels and pulmonary arteries, in that order (later wins).

    Returns
    -------
    np.ndarray
        bool (z, y, x) pulmonary artery lumen.
    """
    for segment in vessels.airways:
        wall = max(1.0, 0.15 * segment.radius0)
        paint_tube(
            labels, grid, segment, Tissue.AIRWAY, wall_mm=wall, wall_value=Tissue.AIRWAY_WALL
        )
    for segment in vessels.veins:
        paint_tube(labels, grid, segment, Tissue.LEFT_BLOOD)
    for segment, tissue in vessels.systemic:
        paint_tube(labels, grid, segment, tissue)
    arteries = np.zeros(grid.shape, dtype=bool)
    for segment in vessels.arteries:
        field = tube_field(grid, segment)
        if field is not None:
            labels[field.slices][field.inside] = Tissue.PA_BLOOD
            arteries[field.slices] |= field.inside
    return arteries
