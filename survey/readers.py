"""Reading one galaxy's cutout as a ``(bands, y, x)`` float32 array, whatever layout the survey ships.

Surveys arrive as:

- FITS with one image HDU per galaxy, a ``(bands, y, x)`` cube or a 2-D image (the ``hdu`` column says which);
- FITS with one extension per band (a multi-extension file per galaxy), each named by ``EXTNAME``, ``FILTER``
  or ``BAND``;
- one FITS file per band, the catalog's path (or the name of its file column) holding a ``{band}`` placeholder;
- PNG/JPEG colour cutouts, already display-stretched: stored bluest first (B, G, R), scaled to 0-1;
- NPY or HDF5 stacks, ``(N, y, x, channels)`` (Galaxy10 style) or ``(N, bands, y, x)``; the ``hdu`` column, or
  else the catalog row, says which image.

Bands are chosen by name (``bands``), matched without regard to case, so a survey can be packed with the bands an
encoder was trained on, in that order. A reader keeps the last file it opened, since catalogs are grouped by file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image, UnidentifiedImageError

from survey.cutout_wcs import celestial

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
STACK_SUFFIXES = (".npy", ".h5", ".hdf5")
RASTER_BANDS = ["B", "G", "R"]
BAND_PLACEHOLDER = "{band}"


@dataclass(frozen=True)
class Cutout:
    """One galaxy's pixels, the name of each plane, whether they are display-stretched (PNG/JPEG, uint8), and
    the celestial WCS of its pixel grid where the file has one."""

    pixels: np.ndarray
    bands: list[str]
    raster: bool
    wcs: WCS | None = None


def header_bands(header: fits.Header, n: int) -> list[str]:
    """Plane names of an ``n``-plane cube: ``BANDS`` ("g,r,z" or "grz"), ``BAND1..n``, ``BAND0..n-1``, else
    ``band0..``."""
    if "BANDS" in header:
        text = str(header["BANDS"])
        names = [b.strip() for b in text.split(",")] if "," in text else list(text.strip())
        if len(names) == n:
            return names
    for first in (1, 0):
        if all(f"BAND{first + i}" in header for i in range(n)):
            return [str(header[f"BAND{first + i}"]).strip() for i in range(n)]
    return [f"band{i}" for i in range(n)]


def pick(names: list[str], wanted: list[str] | None, where: str) -> list[int]:
    """Indices of the ``wanted`` bands among ``names`` (case-insensitive), in the order wanted."""
    if wanted is None:
        return list(range(len(names)))
    lower = [n.lower() for n in names]
    missing = [w for w in wanted if w.lower() not in lower]
    if missing:
        raise ValueError(f"band(s) {', '.join(missing)} not in {where} (it has {', '.join(names) or 'none'})")
    return [lower.index(w.lower()) for w in wanted]


@dataclass
class CutoutReader:
    """Reads cutouts relative to ``root``; ``bands`` picks planes by name, ``dataset`` names HDF5 image data."""

    root: Path
    bands: list[str] | None = None
    dataset: str = "images"
    _open: dict = field(default_factory=dict, repr=False)

    def read(self, file: str, hdu: int | None, row: int) -> Cutout:
        """The cutout at catalog path ``file`` (HDU or stack index ``hdu``; ``row`` when a stack has no index)."""
        if BAND_PLACEHOLDER in file:
            return self._per_band_files(file, hdu)
        path = self.root / file
        suffix = path.suffix.lower()
        if suffix in RASTER_SUFFIXES:
            return self._select(_read_raster(path), RASTER_BANDS, True, path)
        if suffix in STACK_SUFFIXES:
            return self._from_stack(path, row if hdu is None else hdu)
        return self._from_fits(path, hdu)

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()

    def _handle(self, path: Path):
        if path not in self._open:
            self.close()
            if not path.exists():
                raise FileNotFoundError(path)
            suffix = path.suffix.lower()
            if suffix == ".npy":
                self._open[path] = _NpyStack(np.load(path, mmap_mode="r"))
            elif suffix in (".h5", ".hdf5"):
                import h5py

                self._open[path] = h5py.File(path, "r")
            else:
                self._open[path] = fits.open(path, memmap=False)
        return self._open[path]

    def _select(self, img: np.ndarray, names: list[str], raster: bool, where: Path | str,
                wcs: WCS | None = None) -> Cutout:
        if img.ndim == 2:
            img, names = img[None], names[:1]
        keep = pick(names, self.bands, str(where))
        return Cutout(img[keep] if keep != list(range(len(names))) else img, [names[i] for i in keep], raster, wcs)

    def _from_fits(self, path: Path, hdu: int | None) -> Cutout:
        hdul = self._handle(path)
        h = _image_hdu(hdul, hdu, path)
        where = f"{path.name}[{hdul.index(h)}]"
        data = np.asarray(h.data, dtype=np.float32)
        if data.ndim == 3:
            return self._select(data, header_bands(h.header, data.shape[0]), False, where, celestial(h.header))
        # One extension per band: the file's image HDUs named by band (all of them when no band is asked for).
        named = {name.lower(): x for x in hdul if x.is_image and x.data is not None
                 and (name := _plane_name(x.header, True))} if hdu is None else {}
        if hdu is not None or self.bands is None and len(named) < 2:  # a galaxy's own HDU, or a 2-D survey
            return self._select(data, [_plane_name(h.header, False) or "band0"], False, where, celestial(h.header))
        if self.bands is None:
            planes = list(named.values())
            return Cutout(_stack_planes([np.asarray(x.data, np.float32) for x in planes], path.name),
                          [_plane_name(x.header, True) for x in planes], False, celestial(planes[0].header))
        missing = [b for b in self.bands if b.lower() not in named]
        if missing:
            raise ValueError(f"band(s) {', '.join(missing)} not among the extensions of {path.name} (it has "
                             f"{', '.join(_plane_name(x.header, True) for x in named.values()) or 'none named'})")
        planes = [np.asarray(named[b.lower()].data, dtype=np.float32) for b in self.bands]
        return Cutout(_stack_planes(planes, path.name), list(self.bands), False,
                      celestial(named[self.bands[0].lower()].header))

    def _per_band_files(self, template: str, hdu: int | None) -> Cutout:
        if not self.bands:
            raise ValueError(f"{template} names one file per band: say which bands with --bands")
        planes, wcs = [], None
        for band in self.bands:
            path = self.root / template.replace(BAND_PLACEHOLDER, band)
            with fits.open(path, memmap=False) as hdul:
                h = _image_hdu(hdul, hdu, path)
                data = np.asarray(h.data, dtype=np.float32)
                if wcs is None:  # the bands share one grid (their shapes are checked); the first WCS is theirs
                    wcs = celestial(h.header)
            if data.ndim != 2:
                raise ValueError(f"the {band} file {path.name} holds a {data.ndim}-D image, not one band")
            planes.append(data)
        return Cutout(_stack_planes(planes, template), list(self.bands), False, wcs)

    def _from_stack(self, path: Path, index: int) -> Cutout:
        handle = self._handle(path)
        data = handle if isinstance(handle, _NpyStack) else _h5_dataset(handle, self.dataset, path)
        if not 0 <= index < data.shape[0]:
            raise IndexError(f"image {index} is outside the stack {path.name} of {data.shape[0]}")
        raw = np.asarray(data[index])
        channels_last = raw.ndim == 3 and raw.shape[-1] <= 4 < raw.shape[0]
        img = raw.transpose(2, 0, 1) if channels_last else raw
        n = img.shape[0] if img.ndim == 3 else 1
        if raw.dtype == np.uint8:  # display-stretched colour, like a JPEG: bluest first, 0-1
            rgb = img.ndim == 3 and n == 3
            return self._select((img[::-1] if rgb else img).astype(np.float32) / 255.0,
                                RASTER_BANDS if rgb else _stack_bands(data, n), True, path.name)
        return self._select(img.astype(np.float32), _stack_bands(data, n), False, path.name)


@dataclass(frozen=True)
class _NpyStack:
    """A memory-mapped ``.npy`` stack behind the same ``close`` as open files."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def __getitem__(self, i):
        return self.array[i]

    def close(self) -> None:
        pass


def _h5_dataset(handle, name: str, path: Path):
    if name not in handle:
        raise ValueError(f"{path.name} has no dataset {name!r} (it has {', '.join(handle.keys())}); "
                         "name it with --images-dataset")
    return handle[name]


def _stack_bands(data, n: int) -> list[str]:
    """Band names an HDF5 stack declares in a ``bands`` attribute, else ``band0..``."""
    attrs = getattr(data, "attrs", {})
    if "bands" in attrs:
        names = [b.decode() if isinstance(b, bytes) else str(b) for b in np.atleast_1d(attrs["bands"])]
        if len(names) == n:
            return names
    return [f"band{i}" for i in range(n)]


def _image_hdu(hdul: fits.HDUList, hdu: int | None, path: Path):
    """HDU ``hdu``, or without one the first that holds an image (a compressed or MEF file's primary is empty)."""
    if hdu is None:
        hdu = next((i for i, h in enumerate(hdul) if h.is_image and h.data is not None), 0)
    h = hdul[hdu]
    if not h.is_image or h.data is None:
        raise ValueError(f"HDU {hdu} of {path.name} holds no image")
    return h


def _plane_name(header: fits.Header, extname: bool) -> str | None:
    """A 2-D image's band: ``FILTER``, ``BAND`` or ``BAND1``; ``EXTNAME`` too where extensions are bands (in a
    survey with one HDU per galaxy, ``EXTNAME`` names the galaxy)."""
    for key in ("FILTER", "BAND", "BAND1", *(("EXTNAME",) if extname else ())):
        if key in header and str(header[key]).strip():
            return str(header[key]).strip()
    return None


def _stack_planes(planes: list[np.ndarray], where: str) -> np.ndarray:
    shapes = {p.shape for p in planes}
    if len(shapes) != 1 or planes[0].ndim != 2:
        raise ValueError(f"the bands of {where} differ in shape: {', '.join(str(p.shape) for p in planes)}")
    return np.stack(planes)


def _read_raster(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im, dtype=np.float32) / 255.0
    except UnidentifiedImageError as exc:
        raise ValueError(f"not an image: {exc}") from exc
    return rgb if rgb.ndim == 2 else rgb[:, :, ::-1].transpose(2, 0, 1)  # (B, G, R), bluest first
