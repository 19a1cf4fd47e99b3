"""SHIFT (synthetic, CARLA-based): zipped or extracted frames, semseg in the R channel, det_2d boxes.

    ROOT/discrete/images/{split}/{view}/img.zip     <seq>/<frame:08d>_img_<view>.jpg
                                       /semseg.zip  <seq>/<frame:08d>_semseg_<view>.png
                                       /det_2d.json Scalabel frames {name, videoName, labels}
ROOT may also be the {view} folder itself, and the zips may be extracted in place
(img/<seq>/..., semseg/<seq>/...). Frame names are '<seq>/<frame:08d>_<view>'.
Class ids (red channel) follow the CARLA <= 0.9.13 list. Scalabel boxes are inclusive
(+1 to x2, y2; option box_inclusive=false if a file proves otherwise).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from semguard.data.formats.base import as_bool, Frame, FrameDataset, FrameIndex, pair_frames, clip_boxes, no_frames
from semguard.data.readers import ZIP_SEPARATOR, read_label, read_rgb
from semguard.data.mapping import FrameProblem
from semguard.data.formats.scalabel import read_scalabel_frames, scalabel_boxes
from semguard.data.mapping import UNREADABLE, IdMapping, IgnoreReport
from semguard.data.sample import Sample
from semguard.labels import CARLA_LEGACY_NAMES, SHIFT_TO_TRAIN

SHIFT_IDS = IdMapping(SHIFT_TO_TRAIN, known_ids=CARLA_LEGACY_NAMES, source="SHIFT class id", names=CARLA_LEGACY_NAMES)


def parse_member(member: str) -> tuple[str, str, str, str] | None:
    """'<seq>/<frame>_<group>_<view>.<ext>' -> (seq, frame, group, view); None if not a frame."""
    path = Path(member)
    if len(path.parts) < 2 or path.suffix.lower() not in (".jpg", ".png"):
        return None
    frame, _, rest = path.stem.partition("_")
    group, _, view = rest.partition("_")
    if not frame.isdigit() or not group or not view:
        return None
    return path.parent.as_posix(), frame, group, view


def _frame_name(seq: str, frame: str, view: str) -> str:
    return f"{seq}/{frame}_{view}"


class ShiftFormat(FrameDataset):
    format_name = "shift"
    options_help = {"split": "train | val (default train), when ROOT is the SHIFT root",
                    "view": "camera view folder (default front), when ROOT is the SHIFT root",
                    "box_inclusive": "Scalabel boxes are inclusive (default true)"}
    id_names = CARLA_LEGACY_NAMES

    def __init__(self, root, *, split: str = "train", view: str = "front", box_inclusive: bool | str = True, **kwargs):
        self.split, self.view = str(split), str(view)
        self.box_inclusive = as_bool(box_inclusive, "box_inclusive")
        super().__init__(root, **kwargs)

    def _folder(self) -> Path:
        nested = self.root / "discrete" / "images" / self.split / self.view
        return nested if nested.is_dir() else self.root

    def _list(self, folder: Path, group: str) -> dict[str, str]:
        """name -> ref of the `group` ('img', 'semseg') frames, zipped or extracted."""
        out: dict[str, str] = {}
        archive = folder / f"{group}.zip"
        if archive.is_file():
            try:
                with zipfile.ZipFile(archive) as handle:
                    members = handle.namelist()
            except (OSError, zipfile.BadZipFile) as err:
                raise FrameProblem(UNREADABLE, str(archive), f"{archive}: unreadable zip archive ({err}); download it again") from None
            for member in members:
                parsed = parse_member(member)
                if parsed and parsed[2] == group:
                    out[_frame_name(parsed[0], parsed[1], parsed[3])] = f"{archive}{ZIP_SEPARATOR}{member}"
        elif (folder / group).is_dir():
            for path in (folder / group).rglob("*"):
                parsed = parse_member(path.relative_to(folder / group).as_posix())
                if parsed and parsed[2] == group:
                    out[_frame_name(parsed[0], parsed[1], parsed[3])] = str(path)
        return out

    def scan(self) -> FrameIndex:
        folder = self._folder()
        images, labels = self._list(folder, "img"), self._list(folder, "semseg")
        if not images and not labels:
            raise no_frames(folder, f"{folder}: no SHIFT frames (expected img.zip and semseg.zip, or img/ and semseg/ folders); "
                                    "point ROOT at the SHIFT root or at discrete/images/<split>/<view>")
        self.box_file = str(folder / "det_2d.json") if (folder / "det_2d.json").is_file() else None
        self._labels_by_name: dict[str, list] = {}
        if self.box_file:
            for entry in read_scalabel_frames(self.box_file):
                parsed = parse_member(f"{entry.get('videoName', '')}/{entry['name']}")
                if parsed:
                    self._labels_by_name[_frame_name(parsed[0], parsed[1], parsed[3])] = entry.get("labels") or []
        return pair_frames(images, labels)


    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        image = read_rgb(frame.image)
        label = read_label(image, frame.image, frame.label, SHIFT_IDS, report, strict, what="semseg label",
                           channel="red")
        boxes = []
        if self.box_file:
            boxes = scalabel_boxes(self._labels_by_name.get(frame.name), self.box_file, report, strict,
                                   inclusive=self.box_inclusive)
            boxes = clip_boxes(boxes, image.shape[:2], where=f"{self.box_file} ({frame.name})", report=report)
        return Sample(image=image, label=label, boxes=boxes, name=frame.name, source_path=frame.image)
