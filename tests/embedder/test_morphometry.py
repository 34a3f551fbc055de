"""Classical morphometry on analytic profiles whose answers are known, and its place in the search vectors."""

from __future__ import annotations

import json
from pathlib import Path

import galsim
import numpy as np
import pytest

from embedder.morphometry import NAMES, combine, fit_quantiles, measure, to_normal

SCALE = 0.262
NOISE = 0.03


def draw(profile: galsim.GSObject, seed: int = 0, size: int = 64) -> np.ndarray:
    """One noisy single-band (1, size, size) cutout of ``profile``."""
    image = profile.drawImage(nx=size, ny=size, scale=SCALE).array
    return (image + np.random.default_rng(seed).normal(0, NOISE, image.shape))[None].astype(np.float32)


def stats_of(*profiles: galsim.GSObject) -> list[dict[str, float]]:
    values = measure(np.stack([draw(p, seed=i) for i, p in enumerate(profiles)]), np.array([NOISE]))
    return [dict(zip(NAMES, row)) for row in values]


def test_symmetric_galaxies_have_no_asymmetry_and_pairs_have_much() -> None:
    gauss, pair = stats_of(
        galsim.Gaussian(sigma=1.0, flux=100),
        galsim.Add([galsim.Gaussian(sigma=0.5, flux=60).shift(-1.2, 0),
                    galsim.Gaussian(sigma=0.5, flux=40).shift(1.2, 0.3)]),
    )
    assert abs(gauss["asymmetry"]) < 0.03
    assert pair["asymmetry"] > 0.2


def test_concentration_orders_de_vaucouleurs_above_exponential_above_gaussian() -> None:
    gauss, expo, dev = stats_of(galsim.Gaussian(half_light_radius=1.5, flux=100),
                                galsim.Exponential(half_light_radius=1.5, flux=100),
                                galsim.DeVaucouleurs(half_light_radius=1.5, flux=100))
    # A 2-D Gaussian's r80/r20 is sqrt(ln 5 / ln 1.25): C = 2.14 exactly.
    assert gauss["concentration"] == pytest.approx(5 * np.log10(np.sqrt(np.log(5) / np.log(1.25))), abs=0.1)
    assert gauss["concentration"] < expo["concentration"] < dev["concentration"]
    assert dev["gini"] > expo["gini"] and dev["m20"] < expo["m20"]  # light piled in the centre
    assert gauss["r50"] == pytest.approx(1.5 / SCALE, rel=0.05)  # the half-light radius, in pixels


def test_a_ring_keeps_its_light_out_of_the_centre() -> None:
    disc, ring = stats_of(galsim.Exponential(half_light_radius=1.2, flux=100),
                          galsim.Add([galsim.Gaussian(sigma=0.3, flux=15),
                                      *(galsim.Gaussian(sigma=0.4, flux=85 / 24).shift(3 * np.cos(a), 3 * np.sin(a))
                                        for a in np.linspace(0, 2 * np.pi, 24, endpoint=False))]))
    assert ring["concentration"] < disc["concentration"] - 1
    assert ring["m20"] > disc["m20"] + 0.5


def test_measurements_do_not_depend_on_orientation_or_band_count() -> None:
    profile = galsim.Sersic(n=2, half_light_radius=1.2, flux=100).shear(q=0.5, beta=30 * galsim.degrees)
    galaxy = draw(profile)
    turned = np.rot90(galaxy, 1, axes=(1, 2)).copy()
    three = np.concatenate([draw(profile, seed=s) for s in (1, 2, 3)])  # the same light in three equally deep bands
    one, rot = measure(np.stack([galaxy, turned]), np.array([NOISE]))
    both = measure(three[None], np.full(3, NOISE))[0]
    assert np.allclose(one, rot, rtol=1e-4, atol=1e-4, equal_nan=True)
    assert np.isnan(one[NAMES.index("blue_colour"):]).all()  # one band has no colour
    assert both[NAMES.index("blue_colour")] == pytest.approx(0, abs=0.02)  # equal light in every band
    assert both[NAMES.index("asymmetry")] == pytest.approx(one[NAMES.index("asymmetry")], abs=0.05)
    assert both[NAMES.index("concentration")] == pytest.approx(one[NAMES.index("concentration")], abs=0.2)


def test_colours_and_the_gradient_of_a_red_bulge_in_a_blue_disc() -> None:
    bulge = galsim.DeVaucouleurs(half_light_radius=0.5, flux=1)
    disc = galsim.Exponential(half_light_radius=2.0, flux=1)
    # Band fluxes blue -> red: the bulge brightens 4x from g to z, the disc fades by half.
    bands = [draw(galsim.Add([bulge.withFlux(60 * b), disc.withFlux(100 * d)]), seed=i)
             for i, (b, d) in enumerate([(1, 1), (2, 0.75), (4, 0.5)])]
    one_colour = np.concatenate([draw(disc.withFlux(100 * f), seed=i) for i, f in enumerate((1.0, 2.0, 4.0))])
    spiral, red = (dict(zip(NAMES, row)) for row in measure(np.stack([np.concatenate(bands), one_colour]),
                                                              np.full(3, NOISE)))
    # -2.5 log10(100 / 200): redder is positive.
    assert red["blue_colour"] == pytest.approx(2.5 * np.log10(2), abs=0.05)
    assert red["red_colour"] == pytest.approx(2.5 * np.log10(2), abs=0.05)
    assert red["colour_gradient"] == pytest.approx(0, abs=0.1)  # one population: no gradient
    assert spiral["colour_gradient"] > 0.5  # the red bulge dominates the centre
    two = measure(np.concatenate(bands[:2])[None], np.full(2, NOISE))[0]
    assert np.isfinite(two[NAMES.index("blue_colour")]) and np.isnan(two[NAMES.index("red_colour")])


def test_blank_and_non_finite_cutouts_give_nan_not_an_error() -> None:
    blank = np.random.default_rng(5).normal(0, NOISE, (1, 64, 64)).astype(np.float32)
    holed = draw(galsim.Gaussian(sigma=1.0, flux=100))
    holed[0, :5, :5] = np.nan
    values = measure(np.stack([blank, holed, np.zeros_like(blank)]), np.array([NOISE]))
    assert np.isnan(values[0]).all() and np.isnan(values[2]).all()
    assert np.isfinite(values[1][: NAMES.index("blue_colour")]).all()


def test_quantile_transform_and_combination() -> None:
    rng = np.random.default_rng(0)
    stats = np.c_[rng.lognormal(size=1000), rng.integers(0, 3, 1000)].astype(np.float32)  # heavy tail; ties
    stats[7] = np.nan
    z = to_normal(stats, fit_quantiles(stats))
    assert z[7].tolist() == [0, 0]  # unmeasurable: the median
    assert abs(np.median(z[:, 0])) < 0.05 and 0.9 < z[:, 0].std() < 1.1
    order = np.argsort(stats[:, 0])
    assert np.all(np.diff(z[order[:-1], 0]) >= 0)  # monotonic
    assert abs(z[stats[:, 1] == 1, 1].mean()) < 0.05  # a tied middle value stays at the middle
    learned = rng.normal(size=(1000, 16)).astype(np.float32)
    learned /= np.linalg.norm(learned, axis=1, keepdims=True)
    search = combine(learned, z, 0.5)
    assert search.shape == (1000, 18) and np.allclose(np.linalg.norm(search, axis=1), 1, atol=1e-5)
    head = search[:, :16] / np.linalg.norm(search[:, :16], axis=1, keepdims=True)
    assert np.allclose(head, learned, atol=1e-5)  # the learned part is recoverable
    with pytest.raises(ValueError, match="no cutout"):
        fit_quantiles(np.full((3, 2), np.nan))
    one_band = np.c_[stats[:, :1], np.full(len(stats), np.nan)]  # a colour no cutout has
    assert np.all(to_normal(one_band, fit_quantiles(one_band))[:, 1] == 0)


def test_the_workdir_searches_learned_plus_morphometry(workdir: Path) -> None:
    info = json.loads((workdir / "embeddings.json").read_text())
    stats = np.load(workdir / "morphometry.npy")
    search = np.load(workdir / "embeddings.npy")
    assert info["morphometry"] == {"statistics": list(NAMES), "weight": 0.7, "columns": len(NAMES)}
    assert stats.shape == (len(search), len(NAMES)) and info["dim"] == search.shape[1]
    assert np.isfinite(stats).all(1).mean() > 0.95
    block = search[:, -len(NAMES):] / np.linalg.norm(search[:, : -len(NAMES)], axis=1, keepdims=True)
    # The statistics' block has an expected squared length of 0.7**2 against the learned part's 1.
    assert np.mean((block**2).sum(1)) == pytest.approx(0.49, rel=0.2)



def test_adding_to_a_workdir_measured_with_other_statistics_asks_for_a_fresh_embed(tmp_path: Path) -> None:
    from embedder.morphometry import extend

    np.save(tmp_path / "morphometry.npy", np.zeros((4, 6), np.float32))
    np.savez(tmp_path / "morphometry.npz", quantiles=np.zeros((3, 6)), names=np.array(NAMES[:6]), weight=0.5)
    with pytest.raises(ValueError, match="re-run `galsearch embed`"):
        extend(tmp_path, 4, np.zeros((1, 3, 8, 8), np.float32), np.ones(3), np.ones((1, 4), np.float32))
    assert np.load(tmp_path / "morphometry.npy").shape == (4, 6)  # nothing written
