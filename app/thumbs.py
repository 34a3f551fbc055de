"""What the gallery shows of a galaxy: for a PNG/JPEG survey its own pixels (the display copy kept at ingest),
for a flux (FITS) survey an asinh colour composite of the bands (Lupton et al. 2004), rendered once and cached.

Re-stretching a JPEG's display-ready pixels, shrunk to the encoder's resolution, would hide the arms and rings
that are plain in the original, so the asinh stretches are for fluxes only."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from astropy.visualization import make_lupton_rgb, simple_norm
from PIL import Image

from survey.store import Store
from survey.workdir import atomic_path

# Plane weights bring g, r, z (or any 3 bands, bluest first) to similar brightness before the RGB mapping.
_WEIGHTS = (1.0, 1.0, 1.3)


def render_png(cutout: np.ndarray, noise: np.ndarray, size: int = 128) -> bytes:
    """A PNG of one (bands, H, W) cutout: reddest band in red, bluest in blue; stretch set by the sky noise."""
    img = np.nan_to_num(np.asarray(cutout, dtype=np.float64))
    if img.shape[0] >= 3:
        b, g, r = (img[i] * w for i, w in zip((0, img.shape[0] // 2, img.shape[0] - 1), _WEIGHTS))
    else:
        b = g = r = img[0]
    scale = float(np.mean(noise)) if np.mean(noise) > 0 else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):  # all-zero pixels: astropy maps 0/0 to black itself
        rgb = make_lupton_rgb(r / scale, g / scale, b / scale, minimum=0.0, stretch=6.0, Q=8)
    out = io.BytesIO()
    Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS).save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_band_png(plane: np.ndarray, size: int = 160, raster: bool = False) -> bytes:
    """A greyscale PNG of one band: fluxes with an asinh stretch between the sky and the 99.5th percentile
    (astropy simple_norm); a PNG/JPEG channel (0-1, already display-stretched) as it is."""
    img = np.nan_to_num(np.asarray(plane, dtype=np.float64))
    if raster:
        grey = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    elif np.ptp(img) == 0:
        grey = np.zeros(img.shape, np.uint8)
    else:
        norm = simple_norm(img, stretch="asinh", percent=99.5)
        grey = (np.clip(np.ma.filled(norm(img), 0.0), 0, 1) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(grey).resize((size, size), Image.Resampling.LANCZOS).save(out, format="PNG", optimize=True)
    return out.getvalue()


def media_type(image: bytes) -> str:
    """``image/jpeg`` or ``image/png``, from the bytes themselves (a survey may mix both)."""
    return "image/jpeg" if image[:3] == b"\xff\xd8\xff" else "image/png"


class ThumbnailCache:
    """Serves display copies as they are; renders each other thumbnail once, then reads its PNG file (written
    atomically)."""

    def __init__(self, folder: Path, store: Store) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = store

    def get(self, row: int) -> bytes:
        """The colour image of a store row: its display copy, else the composite of its bands."""
        copy = self.store.display(row)
        if copy is not None:
            return copy
        return self._cached(f"{int(row)}.png", lambda: render_png(self.store.images[row], self.store.noise))

    def band(self, row: int, band: int) -> bytes:
        """One band of a store row in grey."""
        return self._cached(f"{int(row)}_b{int(band)}.png",
                            lambda: render_band_png(self.store.images[row][band], raster=self.store.raster))

    def _cached(self, name: str, render) -> bytes:
        # Files are named by store row and band number, never by a user-supplied id: no request reaches another path.
        path = self.folder / name
        if path.exists():
            return path.read_bytes()
        png = render()
        with atomic_path(path, shared=True) as tmp:
            tmp.write_bytes(png)
        return png
