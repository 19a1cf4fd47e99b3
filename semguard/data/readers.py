"""Reading the files of a data set: the primitives every loader and the folder format share.

Each turns an unreadable, truncated or inconsistent file into a FrameProblem (a DataError
with its kind, for `semguard data check`) that names the file and the fix. A file
reference is a path, or `ARCHIVE::MEMBER` for a member of a zip archive.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from semguard.files import DATA_FILE_LIMIT, file_kind
from semguard.labels import IGNORE_ID
from semguard.data.mapping import BAD_ANNOTATION, SIZE_MISMATCH, UNREADABLE, FrameProblem

ZIP_SEPARATOR = "::"

_ZIPS: dict[tuple[int, str], zipfile.ZipFile] = {}


def open_zip(path: str) -> zipfile.ZipFile:
    """The process's open ZipFile for `path` (a DataLoader worker opens its own)."""
    key = (os.getpid(), path)
    archive = _ZIPS.get(key)
    if archive is None:
        try:
            archive = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as err:
            raise FrameProblem(UNREADABLE, path, f"{path}: unreadable zip archive ({err}); download it again") from None
        _ZIPS[key] = archive
    return archive


def read_bytes(ref: str) -> bytes:
    """The bytes of a file or of a zip member (`ARCHIVE::MEMBER`)."""
    try:
        if ZIP_SEPARATOR in ref:
            archive_path, member = ref.split(ZIP_SEPARATOR, 1)
            return open_zip(archive_path).read(member)
        kind = file_kind(ref)
        if kind not in ("regular file", "missing path"):  # a FIFO or device: never read (it could block or not end)
            raise FrameProblem(UNREADABLE, ref, f"{ref}: is a {kind}, not a regular file; replace it with the file")
        size = os.stat(ref).st_size if kind == "regular file" else 0
        if size > DATA_FILE_LIMIT:
            raise FrameProblem(UNREADABLE, ref, f"{ref}: is {size / 2**30:.1f} GiB, over the "
                               f"{DATA_FILE_LIMIT / 2**30:.0f} GiB a data set file may have; it is damaged or not a frame")
        return Path(ref).read_bytes()
    except FrameProblem:
        raise
    except (OSError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise FrameProblem(UNREADABLE, ref, f"{ref}: cannot read the file ({err}); restore or remove this frame") from None


def read_pil(ref: str, what: str) -> Image.Image:
    """Open and fully decode an image file; truncated or corrupt files are a FrameProblem."""
    data = read_bytes(ref)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except UnidentifiedImageError:
        raise FrameProblem(UNREADABLE, ref, f"{ref}: unreadable {what}: not an image file, or its header is "
                           "truncated; restore the file or remove this frame") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise FrameProblem(UNREADABLE, ref, f"{ref}: unreadable or truncated {what} ({err}); "
                           "restore the file or remove this frame") from None


def read_rgb(ref: str) -> np.ndarray:
    """An image file as uint8 [H,W,3] RGB."""
    image = read_pil(ref, "image")
    if image.mode != "RGB":
        if image.mode in ("I;16", "I", "F"):
            raise FrameProblem(UNREADABLE, ref, f"{ref}: image is {image.mode} (not 8-bit colour); is this a label file?")
        image = image.convert("RGB")
    return np.asarray(image)


def read_ids(ref: str, what: str = "label") -> np.ndarray:
    """A label or instance file as its raw integer array.

    Palette PNGs give their *indices* (not the colours); 16-bit grey gives uint16;
    RGB gives uint8 [H,W,3].
    """
    image = read_pil(ref, what)
    array = np.asarray(image)
    if image.mode == "RGBA":
        array = array[..., :3]
    return array


def require_same_size(image: np.ndarray, other: np.ndarray, image_ref: str, other_ref: str, what: str) -> None:
    if image.shape[:2] != other.shape[:2]:
        raise FrameProblem(
            SIZE_MISMATCH, other_ref,
            f"{other_ref}: {what} is {other.shape[1]}x{other.shape[0]} but its image {image_ref} is "
            f"{image.shape[1]}x{image.shape[0]} (WxH); replace the mismatched file or remove this frame",
        )


def bad_annotation(path: str, message: str) -> FrameProblem:
    return FrameProblem(BAD_ANNOTATION, path, f"{path}: {message}")


def red_channel(array: np.ndarray, ref: str, what: str) -> np.ndarray:
    """Ids stored in the red channel (SHIFT, CARLA); grey files are taken as they are."""
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[2] >= 3:
        return array[..., 0]
    raise FrameProblem(UNREADABLE, ref, f"{ref}: {what} has shape {array.shape}, expected grey or RGB")


def read_label(image: np.ndarray, image_ref: str, label_ref: str | None, mapping, report=None, strict: bool = False,
               what: str = "label", channel: str = "single",
               not_single: str = "{what} must be single-channel ids, got shape {shape}") -> np.ndarray:
    """A label file of ids as uint8 train ids [H,W]: the steps every id-map loader shares.

    channel "single": the file must be one channel, else a bad annotation (`not_single`,
    formatted with what and shape, says what the format expects); "red": ids in the red
    channel of an RGB file, or a grey file (SHIFT, CARLA); "any": the array as stored. Then
    its size must match the image's, and `mapping` (a semguard.data.mapping.IdMapping)
    turns the ids into train ids, counting unknown ones in `report` (refusing them with `strict`).
    No label file (label_ref None, an unlabelled frame): all ignore.
    """
    if label_ref is None:
        return np.full(image.shape[:2], IGNORE_ID, dtype=np.uint8)
    raw = read_ids(label_ref)
    if channel == "red":
        raw = red_channel(raw, label_ref, what)
    elif channel == "single" and raw.ndim != 2:
        raise bad_annotation(label_ref, not_single.format(what=what, shape=raw.shape))
    require_same_size(image, raw, image_ref, label_ref, what)
    return mapping.apply(raw, label_ref, report, strict)
