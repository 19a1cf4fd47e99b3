"""CamVid in the SegNet layout: grey-id label PNGs of 11 classes, split folders and split lists.

    ROOT/{split}/NAME.png|jpg         RGB frames (480x360 as SegNet ships them; .jpg when re-encoded)
    ROOT/{split}annot/NAME.png        8-bit grey class ids 0..11 (11 = Unlabelled)
    ROOT/{split}.txt                  optional split list, one frame a line:
                                      "/SegNet/CamVid/train/NAME.png /SegNet/CamVid/trainannot/NAME.png"
split is train, val or test. With a split list (ROOT/{split}.txt, or the option `list`) the
list decides the frames: each path is taken as FOLDER/FILE under ROOT (the absolute SegNet
prefix is dropped), and a frame named .png but stored .jpg (or the reverse) is found under
its other suffix. Without a list every frame in ROOT/{split}/ is paired with
ROOT/{split}annot/ by name. A listed frame whose annotation is missing is refused, naming the
annotation file (unless labels_required is false: then it loads with an all-ignore label).

CamVid's 11 classes are coarser than Cityscapes' 19: each maps to one train id (`CAMVID_TO_TRAIN`);
`CAMVID_MERGES` says which train ids a CamVid class also covers, so an evaluation on CamVid
can merge predictions (e.g. traffic light -> SignSymbol) before scoring. docs/FORMATS.md.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Mapping

from semguard.data.formats.base import (
    Frame, FrameDataset, FrameIndex, files_by_stem, no_frames, pair_frames, require_option,
)
from semguard.data.mapping import IMAGE_WITHOUT_LABEL, UNREADABLE, FrameProblem, IdMapping, IgnoreReport
from semguard.data.readers import read_label, read_rgb
from semguard.data.sample import Sample
from semguard.labels import IGNORE_ID, NAME_TO_TRAIN_ID

CAMVID_NAMES: Mapping[int, str] = MappingProxyType({
    0: "Sky", 1: "Building", 2: "Pole", 3: "Road", 4: "Pavement", 5: "Tree", 6: "SignSymbol",
    7: "Fence", 8: "Car", 9: "Pedestrian", 10: "Bicyclist", 11: "Unlabelled",
})

CAMVID_TO_TRAIN: Mapping[int, int] = MappingProxyType({
    0: NAME_TO_TRAIN_ID["sky"], 1: NAME_TO_TRAIN_ID["building"], 2: NAME_TO_TRAIN_ID["pole"],
    3: NAME_TO_TRAIN_ID["road"], 4: NAME_TO_TRAIN_ID["sidewalk"], 5: NAME_TO_TRAIN_ID["vegetation"],
    6: NAME_TO_TRAIN_ID["traffic sign"], 7: NAME_TO_TRAIN_ID["fence"], 8: NAME_TO_TRAIN_ID["car"],
    9: NAME_TO_TRAIN_ID["person"], 10: NAME_TO_TRAIN_ID["rider"], 11: IGNORE_ID,
})

# CamVid class -> every train id its pixels may show (the mapped one first)
CAMVID_MERGES: Mapping[int, tuple[int, ...]] = MappingProxyType({
    6: (NAME_TO_TRAIN_ID["traffic sign"], NAME_TO_TRAIN_ID["traffic light"]),
    10: (NAME_TO_TRAIN_ID["rider"], NAME_TO_TRAIN_ID["bicycle"]),
})

CAMVID_IDS = IdMapping(CAMVID_TO_TRAIN, known_ids=CAMVID_NAMES, source="CamVid class id", names=CAMVID_NAMES)

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def find_frame_file(path: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> Path | None:
    """`path` if it exists, else the same stem under another of `suffixes`, else None."""
    if path.is_file():
        return path
    for suffix in suffixes:
        other = path.with_suffix(suffix)
        if other.is_file():
            return other
    return None


def parse_split_list(path: Path, root: Path, split: str) -> list[tuple[int, Path, Path]]:
    """(line number, image path, annotation path) per frame of a SegNet split list.

    A line is 'IMAGE [ANNOTATION]' (whitespace-separated); blank lines and '#' comments are
    skipped. Each path keeps only its last two parts (FOLDER/FILE) and is taken under `root`,
    so SegNet's absolute '/SegNet/CamVid/...' and relative 'train/...' lines both work; a bare
    FILE is taken in ROOT/{split}. No annotation: ROOT/{split}annot/STEM.png.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FrameProblem(UNREADABLE, str(path), f"{path}: cannot read the split list ({err})") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise FrameProblem(UNREADABLE, str(path),
                               f"{path} line {number}: expected 'IMAGE [ANNOTATION]', got {len(fields)} fields: {line.strip()!r}")
        image = _under_root(fields[0], root, split)
        label = (_under_root(fields[1], root, f"{split}annot") if len(fields) == 2
                 else root / f"{split}annot" / f"{image.stem}.png")
        entries.append((number, image, label))
    return entries


def _under_root(entry: str, root: Path, default_folder: str) -> Path:
    parts = PurePosixPath(entry.replace("\\", "/")).parts
    if len(parts) >= 2 and parts[-2] not in ("/", ""):
        return root / parts[-2] / parts[-1]
    return root / default_folder / parts[-1]


class CamvidFormat(FrameDataset):
    format_name = "camvid"
    options_help = {"split": "train | val | test (default train)",
                    "list": "split list, relative to ROOT or absolute (default ROOT/{split}.txt when present, "
                            "else every frame in ROOT/{split}/)"}
    id_names = CAMVID_NAMES

    def __init__(self, root, *, split: str = "train", list: str | None = None, **kwargs):  # noqa: A002 (option name)
        self.split = require_option(split, "split", "camvid", SPLITS)
        self.list_option = list
        self.missing_annotations: dict[str, str] = {}   # image ref -> the annotation file it lacks
        super().__init__(root, **kwargs)

    def split_list(self) -> Path | None:
        if self.list_option is not None:
            path = Path(self.list_option)
            path = path if path.is_absolute() else self.root / path
            if not path.is_file():
                raise FrameProblem(UNREADABLE, str(path), f"split list {path} (option list) does not exist")
            return path
        default = self.root / f"{self.split}.txt"
        return default if default.is_file() else None

    def scan(self) -> FrameIndex:
        list_path = self.split_list()
        image_dir, label_dir = self.root / self.split, self.root / f"{self.split}annot"
        if list_path is None:
            if not image_dir.is_dir():
                present = [s for s in SPLITS if (self.root / s).is_dir()]
                raise no_frames(image_dir, f"{image_dir} does not exist and there is no split list {self.split}.txt; "
                                           f"a CamVid root holds {self.split}/, {self.split}annot/ (SegNet layout)"
                                + (f"; splits present: {', '.join(present)} (option split)" if present else ""))
            images = files_by_stem(image_dir, IMAGE_SUFFIXES)
            labels = files_by_stem(label_dir, (".png",))
            return self._index(images, labels, {name: str(label_dir / f"{name}.png") for name in images})
        images, labels, expected = {}, {}, {}
        for number, image_path, label_path in parse_split_list(list_path, self.root, self.split):
            image, label = find_frame_file(image_path), find_frame_file(label_path, (".png",))
            if image is None and label is None:
                raise FrameProblem(UNREADABLE, str(image_path),
                                   f"{list_path} line {number}: neither the frame {image_path} nor its annotation "
                                   f"{label_path} exists; is {self.root} the CamVid folder the list belongs to?")
            name = image_path.stem
            if name in images or name in labels:
                raise FrameProblem(UNREADABLE, str(list_path), f"{list_path} line {number}: frame {name} is listed twice")
            if image is not None:
                images[name] = str(image)
            if label is not None:
                labels[name] = str(label)
            expected[name] = str(label_path)
        return self._index(images, labels, expected)

    def _index(self, images: dict[str, str], labels: dict[str, str], expected: dict[str, str]) -> FrameIndex:
        index = pair_frames(images, labels)
        self.missing_annotations = {images[name]: expected[name] for name in sorted(images) if name not in labels}
        return index

    def refuse_problems(self) -> None:
        if self.labels_required and self.missing_annotations and self.frames:
            image, label = next(iter(self.missing_annotations.items()))
            raise FrameProblem(IMAGE_WITHOUT_LABEL, label,
                               f"{label}: missing annotation of the frame {image} ({len(self.missing_annotations)} "
                               f"frames of split {self.split} lack theirs); restore {Path(label).parent.name}/, "
                               "or load the split as unlabelled (labels_required=false)")
        super().refuse_problems()

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        label = read_label(image, frame.image, frame.label, CAMVID_IDS, report, strict,
                           not_single="CamVid annotations are single-channel class ids 0..11, got shape {shape}; "
                                      "use the SegNet *annot/ files, not colour label images")
        return Sample(image=image, label=label, name=frame.name, source_path=frame.image)
