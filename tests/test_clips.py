"""Toy-world clips and clip-statistics translation (`--temporal clip`) on tiny data (32x64 frames)."""

import json

import numpy as np
import pytest
import torch

from eval_fixtures import make_translator
from semguard.cli import main
from semguard.data.folder import FolderDataset, list_names, read_dataset_info, read_sample
from semguard.data.toyworld import make_toy_world, render_sample
from semguard.data.toyworld.clips import (CLIP_INDEX_BASE, LIGHT_CYCLE, camera_of, clip_name, light_state_at,
                                          render_clip_frame)
from semguard.data.toyworld.world import VAL_INDEX_BASE
from semguard.translate.temporal import ClipTranslator, clip_norm_statistics, shard_clips, translate_clip_frames
from semguard.translate import Translator, translate_dataset
from semguard.translate.manifest import shard_names

SIZE = (32, 64)


def _write_clips(root, clips=2, length=3, workers=1):
    make_toy_world(root, train=0, val=0, judge=0, size=SIZE, seed=4, workers=workers, clips=clips, clip_length=length)
    return root / "clips"


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- clips


def test_clip_frames_are_pure_and_named_in_frame_order():
    first = render_clip_frame(3, 5, 7, "sim", "real", SIZE)
    again = render_clip_frame(3, 5, 7, "sim", "real", SIZE)
    assert first.name == "clip_0005/000007" == clip_name(5, 7)
    for field in ("image", "label", "instances"):
        assert np.array_equal(getattr(first, field), getattr(again, field))
    assert first.boxes == again.boxes
    assert sorted(clip_name(0, t) for t in (10, 2, 1)) == [clip_name(0, t) for t in (1, 2, 10)]
    # frame 0 of a clip is the clip's layout as drawn; other frames differ from it
    assert not np.array_equal(render_clip_frame(3, 1, 0, size=SIZE).image, render_clip_frame(3, 1, 4, size=SIZE).image)


def test_worker_count_does_not_change_the_bytes(tmp_path):
    one = _files(_write_clips(tmp_path / "one", workers=1))
    two = _files(_write_clips(tmp_path / "two", workers=2))
    assert one == two and len(one) > 0


def test_clip_sets_on_disk(tmp_path):
    clips = _write_clips(tmp_path / "toy", clips=2, length=3)
    names = [clip_name(c, t) for c in range(2) for t in range(3)]
    for folder in ("sim", "paired", "real"):
        assert list_names(clips / folder) == names
        info = read_dataset_info(clips / folder)
        assert info["clips"] == 2 and info["clip_length"] == 3 and info["cameras"] == ["static", "forward"]
    for name in names:    # the paired truth has the sim layouts: same labels, other style
        sim, paired = read_sample(clips / "sim", name), read_sample(clips / "paired", name)
        assert np.array_equal(sim.label, paired.label) and sim.boxes == paired.boxes
        assert not np.array_equal(sim.image, paired.image)


def test_static_camera_keeps_the_background_and_forward_camera_moves_it():
    assert camera_of(0) == "static" and camera_of(1) == "forward"
    from semguard.metrics.flicker import static_mask

    sim = [render_clip_frame(0, 0, t, "sim", "sim", SIZE) for t in range(4)]
    real = [render_clip_frame(0, 0, t, "sim", "real", SIZE) for t in range(4)]
    for t in range(1, 4):   # one camera, one sensor pattern: where nothing near moved, the sky keeps its values
        still = static_mask(sim[t - 1].image, sim[t].image, sim[t - 1].label, sim[t].label) & (sim[t].label == 10)
        assert still.sum() > 50
        change = np.abs(real[t].image[still].astype(int) - real[t - 1].image[still].astype(int))
        # exact but for a moving car's haze (depth) reaching a sky pixel through the 3x3 blur
        assert change.max() <= 1 and (change > 0).mean() < 0.02
    moving = [render_clip_frame(0, 1, t, "sim", "sim", SIZE) for t in (0, 3)]
    ground = (moving[0].label == 0) | (moving[0].label == 1)
    assert (moving[0].image[ground] != moving[1].image[ground]).any(axis=-1).mean() > 0.01


def test_lights_cycle_and_frame_zero_shows_the_drawn_state():
    period = sum(seconds for _, seconds in LIGHT_CYCLE)
    assert [light_state_at(t) for t in (0.0, 2.1, 2.7, period + 0.1)] == ["green", "amber", "red", "green"]
    states = set()
    for clip in range(6):
        for t in range(0, 40, 4):
            states |= {box.attributes["state"] for box in render_clip_frame(1, clip, t, size=(64, 128)).boxes
                       if box.class_id == 6}
    assert states == {"red", "amber", "green"}


def test_clip_indices_do_not_reuse_a_frame_split_and_frames_are_unchanged():
    assert CLIP_INDEX_BASE > 2 * VAL_INDEX_BASE
    # the odometer (0 outside clips) leaves the ordinary frames as they were
    sample = render_sample(0, 0, "sim", "real", SIZE)
    assert sample.name == "000000" and sample.image.dtype == np.uint8


def test_cli_make_toy_clips(tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["data", "make-toy", "--out", str(out), "--train", "1", "--val", "1", "--size", "32x64",
                 "--clips", "1", "--clip-length", "2"]) == 0
    assert list_names(out / "clips" / "sim") == ["clip_0000/000000", "clip_0000/000001"]
    assert "1 clips of 2 frames" in capsys.readouterr().out
    assert main(["data", "make-toy", "--out", str(tmp_path / "bad"), "--clips", "2", "--clip-length", "1"]) == 2


# ----------------------------------------------------------------------------- clip statistics


@pytest.fixture
def translator_path(tmp_path):
    return make_translator(tmp_path / "translator.pt")


@pytest.fixture
def clip_set(tmp_path):
    return _write_clips(tmp_path / "toy", clips=2, length=3) / "sim"


def _translator(path, **options):
    return Translator.from_checkpoint(path, device="cpu", tile=None, **options)


def test_clip_statistics_of_one_repeated_frame_are_its_own(translator_path, clip_set):
    """Closed form: a clip whose frames are all equal has exactly that frame's statistics."""
    translator = _translator(translator_path)
    frame = FolderDataset(clip_set)[0]
    per_frame = translate_clip_frames(translator, [frame], "none")[0].image
    shared = translate_clip_frames(translator, [frame, frame, frame], "clip")
    for out in shared:
        assert np.abs(out.image.astype(int) - per_frame.astype(int)).max() <= 1   # float rounding of pooled sums


def test_clip_statistics_are_shared_and_differ_from_per_frame(translator_path, clip_set):
    translator = _translator(translator_path)
    dataset = FolderDataset(clip_set)
    frames = [dataset[k] for k in range(3)]
    statistics = clip_norm_statistics(translator, frames)
    norms = [m for m in translator.generator.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert set(statistics) == {id(m) for m in norms}
    for mean, var in statistics.values():
        assert mean.shape == var.shape == (1, mean.shape[1]) and (var >= 0).all()
    shared = translate_clip_frames(translator, frames, "clip")
    alone = translate_clip_frames(translator, frames, "none")
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(shared, alone))


def test_tiled_frames_use_the_clip_statistics_too(translator_path, clip_set):
    """Frames cut into tiles gather and apply the same clip statistics (tiles owned regions)."""
    dataset = FolderDataset(clip_set)
    frames = [dataset[k] for k in range(3)]
    whole = translate_clip_frames(_translator(translator_path), frames, "clip")
    tiled = translate_clip_frames(Translator.from_checkpoint(translator_path, tile=32, overlap=8), frames, "clip")
    for a, b in zip(whole, tiled):
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 3.0


def _translate_cli(checkpoint, source, out, *extra):
    return main(["translate", "--checkpoint", str(checkpoint), "--input", str(source), "--out", str(out),
                 "--workers", "0", "--device", "cpu", "--no-progress", "--tile", "0", "--temporal", "clip", *extra])


def test_clip_translation_keeps_labels_instances_and_boxes(translator_path, clip_set, tmp_path):
    out = tmp_path / "out"
    assert _translate_cli(translator_path, clip_set, out) == 0
    assert list_names(out) == list_names(clip_set)
    for name in list_names(clip_set):
        before, after = read_sample(clip_set, name), read_sample(out, name)
        assert np.array_equal(after.label, before.label) and np.array_equal(after.instances, before.instances)
        assert after.boxes == before.boxes and after.image.shape == before.image.shape
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["header"]["temporal"] == "clip"
    assert read_dataset_info(out)["temporal"] == "clip"
    # another temporal mode into the same folder is refused, not mixed
    assert main(["translate", "--checkpoint", str(translator_path), "--input", str(clip_set), "--out", str(out),
                 "--workers", "0", "--no-progress", "--tile", "0"]) == 2


def test_resume_mid_clip_finishes_the_clip_exactly_once(translator_path, clip_set, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    assert _translate_cli(translator_path, clip_set, reference) == 0
    out = tmp_path / "out"
    original = ClipTranslator.translate_batch
    calls = {"n": 0}

    def dies_after_four(self, batch):
        calls["n"] += 1
        if calls["n"] > 4:          # killed inside the second clip (frames 0, 1 of clip_0001 are done)
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(ClipTranslator, "translate_batch", dies_after_four)
    assert _translate_cli(translator_path, clip_set, out) == 130
    monkeypatch.setattr(ClipTranslator, "translate_batch", original)
    # done = recorded as verified (a frame the writers had not settled when killed is redone, as for any set)
    part = json.loads((out / ".manifest-parts" / "shard-0-of-1.json").read_text())
    done = {name for name, record in part["frames"].items() if record["status"] == "ok"}
    assert {clip_name(0, t) for t in range(3)} <= done and clip_name(1, 2) not in done

    import semguard.translate.pipeline as translate_module

    written = []
    write = translate_module._write_frame
    monkeypatch.setattr(translate_module, "_write_frame", lambda root, sample, *rest: written.append(sample.name)
                        or write(root, sample, *rest))
    assert _translate_cli(translator_path, clip_set, out) == 0
    assert sorted(written) == sorted(set(list_names(clip_set)) - done)     # each missing frame once, nothing redone
    for name in list_names(clip_set):   # the clip statistics come from the whole clip: same bytes as one run
        assert np.array_equal(read_sample(out, name).image, read_sample(reference, name).image)


def test_shards_split_by_clip_and_cover_every_frame_once():
    names = [clip_name(c, t) for c in range(5) for t in range(4)]
    shards = [shard_clips(names, (i, 3)) for i in range(3)]
    assert sorted(n for s in shards for n in s) == sorted(names)
    clips = [{n.split("/")[0] for n in s} for s in shards]
    assert all(not a & b for k, a in enumerate(clips) for b in clips[k + 1:])
    assert any(len(set(shard_names(names, (i, 3))) - set(shards[i])) for i in range(3))   # frame sharding would cut


def test_two_clip_shards_write_what_one_run_writes(translator_path, clip_set, tmp_path):
    translator = _translator(translator_path)
    dataset = FolderDataset(clip_set)
    for shard in ((0, 2), (1, 2)):
        translate_dataset(ClipTranslator(translator, dataset), dataset, tmp_path / "sharded", header={}, shard=shard,
                          workers=0, progress=False, shard_by=shard_clips)
    translate_dataset(ClipTranslator(translator, dataset), dataset, tmp_path / "one", header={}, workers=0,
                      progress=False, shard_by=shard_clips)
    for name in dataset.names:
        assert np.array_equal(read_sample(tmp_path / "sharded", name).image, read_sample(tmp_path / "one", name).image)


def test_clip_statistics_refuse_a_set_without_clips(translator_path, tmp_path):
    make_toy_world(tmp_path / "frames", train=0, val=2, judge=0, size=SIZE, seed=1)
    assert main(["translate", "--checkpoint", str(translator_path), "--input", str(tmp_path / "frames" / "sim" / "val"),
                 "--out", str(tmp_path / "out"), "--workers", "0", "--no-progress", "--temporal", "clip"]) == 2


def test_translate_command_and_in_memory_clip_translation_agree(translator_path, clip_set, tmp_path):
    """What `semguard translate --temporal clip` writes is what `eval --flicker --temporal clip` measures."""
    out = tmp_path / "out"
    assert _translate_cli(translator_path, clip_set, out) == 0
    dataset = FolderDataset(clip_set)
    frames = [dataset[k] for k in range(3)]        # clip_0000
    for frame, translated in zip(frames, translate_clip_frames(_translator(translator_path), frames, "clip")):
        assert np.array_equal(read_sample(out, frame.name).image, translated.image)
