"""Each packed cutout's sky coordinates: the source file's celestial WCS carried through the ingest's crop and
resample, so a researcher who downloads a packed cutout can still overlay a catalogue or measure an offset.

A header per galaxy would cost kilobytes each; what changes from one cutout to the next is only the linear part
of the WCS, so the store keeps eight numbers a galaxy (``wcs.npy``: CRVAL1-2, CRPIX1-2 and the CD matrix) and the
survey's projection once (``meta.json["wcs"]``: CTYPE, CUNIT, RADESYS, ...). Distortion terms (SIP) are not
kept: over a cutout of a few arcminutes they are far below a pixel.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

WCS_FILE = "wcs.npy"
PACKED = 8  # numbers a galaxy: crval (2), crpix (2), cd (2x2, row-major)
# LONPOLE/LATPOLE are left to their defaults, which follow from each cutout's own CRVAL (astropy writes them
# out per cutout, so they would make every cutout's projection look different).
TEMPLATE_KEYS = ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "RADESYS", "EQUINOX")


def celestial(header: fits.Header) -> WCS | None:
    """The header's 2-D celestial WCS, or None where it has none (or one astropy cannot parse)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            w = WCS(header, naxis=2)
        except (ValueError, KeyError, MemoryError, TypeError):
            return None
    return w if w.has_celestial and w.naxis == 2 else None


def crop_box(height: int, width: int, crop: float) -> tuple[int, int, int, int]:
    """(y0, x0, rows, columns) of the central ``crop`` fraction the ingest keeps of a height x width cutout."""
    rows, cols = max(1, round(height * crop)), max(1, round(width * crop))
    return (height - rows) // 2, (width - cols) // 2, rows, cols


def pack(w: WCS, shape: tuple[int, int], crop: float, size: int | None) -> np.ndarray:
    """The linear WCS of the packed cutout made from a ``shape`` (H, W) image by the ingest's crop and resample.

    Cropping moves the reference pixel; resampling by f (old pixels per new one, per axis) keeps pixel edges
    aligned, so a new pixel p' covers old pixels from f(p' - 1/2) + 1/2: CRPIX' = (CRPIX - 1/2)/f + 1/2 and the
    CD matrix's columns scale by f."""
    y0, x0, rows, cols = crop_box(*shape, crop)
    crpix = np.asarray(w.wcs.crpix, float) - (x0, y0)
    factor = np.array([cols / size, rows / size]) if size is not None else np.ones(2)
    crpix = (crpix - 0.5) / factor + 0.5
    cd = np.asarray(w.pixel_scale_matrix, float) * factor[None, :]
    return np.concatenate([np.asarray(w.wcs.crval, float), crpix, cd.ravel()])


def template(w: WCS) -> dict:
    """What every cutout of a survey shares: the projection, units and frame, as header cards."""
    header = w.to_header()
    return {key: header[key] for key in TEMPLATE_KEYS if key in header}


def restore(shared: dict, packed: np.ndarray) -> WCS | None:
    """The WCS of one packed cutout, or None where its row holds none (NaN)."""
    if not np.all(np.isfinite(packed)):
        return None
    header = fits.Header({"WCSAXES": 2, **shared})
    header["CRVAL1"], header["CRVAL2"], header["CRPIX1"], header["CRPIX2"] = (float(v) for v in packed[:4])
    for (i, j), value in zip(((1, 1), (1, 2), (2, 1), (2, 2)), packed[4:]):
        header[f"CD{i}_{j}"] = float(value)
    return celestial(header)


def missing(n: int) -> np.ndarray:
    """Rows for ``n`` cutouts without a WCS."""
    return np.full((n, PACKED), np.nan)
