"""semguard's own folder format (images/, labels/, instances/, boxes/): the generic loader.

Wraps `semguard.data.folder.FolderDataset` for the listing and the dataset.json metadata,
and reads frames through the shared readers so that out-of-range ids are reported (or,
with strict, refused) like in every other format.
"""

from __future__ import annotations



from semguard.data import folder as folder_format
from semguard.data.formats.base import Frame, FrameDataset, FrameIndex, files_by_stem, pair_frames, no_frames
from semguard.data.mapping import IgnoreReport
from semguard.data.sample import Sample
from semguard.errors import DataError
from semguard.labels import TRAIN_ID_NAMES



class FolderFormat(FrameDataset):
    """ROOT/images/NAME.png, labels/NAME.png (train ids), instances/NAME.png, boxes/NAME.json."""

    format_name = "folder"
    options_help: dict[str, str] = {}
    id_names = dict(enumerate(TRAIN_ID_NAMES))

    def scan(self) -> FrameIndex:
        if not (self.root / folder_format.IMAGE_DIR).is_dir():
            raise no_frames(self.root, f"{self.root} is not a semguard folder data set: "
                                       f"{self.root / folder_format.IMAGE_DIR} is missing")
        try:
            self.folder: folder_format.FolderDataset | None = folder_format.FolderDataset(
                self.root, labels_required=self.labels_required)
        except DataError:
            self.folder = None  # an empty set: reported as such by the base class / check
        self.info = folder_format.read_dataset_info(self.root)
        images = files_by_stem(self.root / folder_format.IMAGE_DIR, (".png",))
        labels = files_by_stem(self.root / folder_format.LABEL_DIR, (".png",))
        return pair_frames(images, labels)

    def skipped_files(self) -> list[str]:
        """Entries beside the frames that are not frames (another extension, not a regular file)."""
        return [str(path) for path in folder_format.skipped_files(self.root)]

    def load_frame(self, frame: Frame, report: IgnoreReport, strict: bool) -> Sample:
        return folder_format.read_sample(self.root, frame.name, with_label=frame.label is not None, report=report,
                                         strict=strict)
