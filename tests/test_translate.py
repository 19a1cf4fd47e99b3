"""`semguard translate` and the Translator API on tiny data (32x64 frames, 4-channel generators)."""

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semguard.cli import main
from semguard.config import config_from_dict
from semguard.data.batch import collate_samples
from semguard.data.folder import list_names, read_sample, write_png, write_sample
from semguard.data.sample import Box, Sample
from semguard.models import build_conditioning, build_generator
from semguard.checkpoints import save_translator
from semguard.translate import Translator, flip_rates, translate_dataset
from semguard.translate.manifest import shard_names

NAMES = ["a/0001", "a/0002", "b/0003", "b/0004", "c.5"]


def _sample(index: int, name: str, size=(32, 64)) -> Sample:
    rng = np.random.default_rng(index)
    label = rng.integers(0, 19, size=size, dtype=np.uint8)
    label[:4] = 255
    instances = np.zeros(size, dtype=np.int32)
    instances[8:20, 10:30] = 3
    boxes = [Box((10.0, 8.0, 30.0, 20.0), 13, 3), Box((40.0, 2.0, 44.5, 9.0), 6, 0, {"state": "red"})]
    image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    return Sample(image=image, label=label, instances=instances if index % 2 == 0 else None, boxes=boxes, name=name)


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "source"
    for index, name in enumerate(NAMES):
        write_sample(root, _sample(index, name))
    return root


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    config = config_from_dict({"model": {"generator": "spade", "base_channels": 4, "n_blocks": 1, "n_downsample": 1}})
    torch.manual_seed(0)
    generator, _ = build_generator(config.model)
    path = tmp_path / "translator.pt"
    state = generator.state_dict()
    save_translator(path, config, generator, generator_ema=state, step=7)
    return path


def _translate(checkpoint, source, out, *extra):
    return main(["translate", "--checkpoint", str(checkpoint), "--input", str(source), "--out", str(out),
                 "--workers", "0", "--device", "cpu", "--no-progress", "--tile", "0", *extra])


def _assert_carried_through(source: Path, out: Path, names=NAMES):
    assert list_names(out) == sorted(names)
    for name in names:
        before, after = read_sample(source, name), read_sample(out, name)
        assert after.image.shape == before.image.shape
        assert np.array_equal(after.label, before.label)
        assert (after.instances is None) == (before.instances is None)
        if before.instances is not None:
            assert np.array_equal(after.instances, before.instances)
        assert after.boxes == before.boxes


def test_labels_instances_and_boxes_out_equal_in(checkpoint, source, tmp_path):
    out = tmp_path / "out"
    assert _translate(checkpoint, source, out, "--tile", "32", "--overlap", "8", "--workers", "1") == 0
    _assert_carried_through(source, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["header"]["checkpoint_sha256"]
    assert manifest["header"]["config"]["model"]["base_channels"] == 4
    assert {r["status"] for r in manifest["frames"].values()} == {"ok"}
    assert sorted(manifest["frames"]) == sorted(NAMES)
    # a rerun skips every frame (all complete and valid)
    assert _translate(checkpoint, source, out) == 0


def test_kill_and_rerun_completes_every_frame(checkpoint, source, tmp_path, monkeypatch):
    out = tmp_path / "out"
    original = Translator.translate_batch
    calls = {"n": 0}

    def dies_after_two(self, batch):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt  # the run is killed here
        return original(self, batch)

    monkeypatch.setattr(Translator, "translate_batch", dies_after_two)
    assert _translate(checkpoint, source, out) == 130
    # what a SIGKILL mid-write leaves: a temporary file beside the target
    stale = out / "images" / "b" / ".0004.png.abc123.tmp"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a png")
    (out / ".manifest-parts" / ".shard-0-of-1.json.xyz789.tmp").write_bytes(b"{")
    monkeypatch.setattr(Translator, "translate_batch", original)
    assert len(list_names(out)) < len(NAMES)
    assert _translate(checkpoint, source, out) == 0
    _assert_carried_through(source, out)
    assert not list(out.rglob("*.tmp"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert {r["status"] for r in manifest["frames"].values()} == {"ok"} and len(manifest["frames"]) == len(NAMES)


def test_two_shards_cover_the_set_exactly_once(checkpoint, source, tmp_path):
    out = tmp_path / "out"
    assert _translate(checkpoint, source, out, "--shard", "0/2") == 0
    first = set(list_names(out))
    assert _translate(checkpoint, source, out, "--shard", "1/2") == 0
    _assert_carried_through(source, out)
    manifest = json.loads((out / "manifest.json").read_text())
    shards = {name: record["shard"] for name, record in manifest["frames"].items()}
    assert set(shards) == set(NAMES) and set(shards.values()) == {"0/2", "1/2"}
    assert {n for n, s in shards.items() if s == "0/2"} == first
    for count in (1, 2, 3, 7):
        parts = [shard_names(NAMES, (i, count)) for i in range(count)]
        assert sorted(sum(parts, [])) == sorted(NAMES)


def test_torchrun_ranks_split_a_shard(checkpoint, source, tmp_path, monkeypatch):
    out = tmp_path / "out"
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert _translate(checkpoint, source, out) == 0
    _assert_carried_through(source, out)


def test_corrupt_frame_is_reported_by_name_and_the_rest_translated(checkpoint, source, tmp_path, capsys):
    (source / "images" / "b" / "0003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    assert _translate(checkpoint, source, out) == 1  # the others are translated; 0 only when every frame is done
    err = capsys.readouterr().err
    assert "b/0003" in err
    good = [n for n in NAMES if n != "b/0003"]
    _assert_carried_through(source, out, good)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frames"]["b/0003"]["status"] == "failed" and manifest["frames"]["b/0003"]["reason"]
    assert _translate(checkpoint, source, tmp_path / "out2", "--fail-on-error") == 1


def test_broken_set_is_refused(checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    assert _translate(checkpoint, empty, tmp_path / "out") == 2
    assert "error" in capsys.readouterr().err


def test_python_api(checkpoint):
    translator = Translator.from_checkpoint(checkpoint, device="cpu", tile=32, overlap=8)
    assert translator.metadata["step"] == 7 and translator.metadata["weights"] == "generator_ema"
    sample = _sample(0, "x", size=(37, 70))  # not a multiple of the generator's size_multiple
    out = translator.translate_sample(sample)
    assert out.image.shape == (37, 70, 3) and out.image.dtype == np.uint8
    assert out.label is sample.label and out.instances is sample.instances and out.boxes == sample.boxes
    batch = collate_samples([_sample(1, "y"), _sample(2, "z")])
    images = translator.translate_batch(batch)
    assert images.shape == (2, 3, 32, 64) and images.dtype == torch.float32
    assert float(images.min()) >= -1 and float(images.max()) <= 1
    whole = Translator.from_checkpoint(checkpoint, tile=None).translate_batch(batch)
    assert (images - whole).abs().mean() < 0.05


def test_quality_gate_flags_and_drops(checkpoint, source, tmp_path):
    translator = Translator.from_checkpoint(checkpoint, tile=None)

    def judge(image):  # reads every pixel as class 0
        logits = torch.zeros(image.shape[0], 19, *image.shape[-2:])
        logits[:, 0] = 1
        return logits

    from semguard.data.folder import FolderDataset

    out = tmp_path / "out"
    summary = translate_dataset(translator, FolderDataset(source), out, header={"max_flip_rate": 0.5},
                                workers=0, judge=judge, max_flip_rate=0.5, drop_flagged=True, progress=False)
    assert summary.flagged == len(NAMES) and summary.dropped == len(NAMES)
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(r["status"] == "flagged" and r["flip_rate"] > 0.5 and not r["written"] for r in manifest["frames"].values())
    assert not (out / "images").exists() or not list_names(out)
    label = torch.tensor([[[0, 1], [255, 1]]])
    logits = torch.zeros(1, 19, 2, 2)
    logits[:, 1] = 1
    assert flip_rates(logits, label) == [pytest.approx(1 / 3)]


# ---------------------------------------------------------------- --tile auto


def _batch(size=(70, 134)):
    from semguard.data.batch import collate_samples

    return collate_samples([_sample(0, "x", size)])


def _translator(checkpoint, **options) -> Translator:
    return Translator.from_checkpoint(checkpoint, device="cpu", **options)


def test_tile_auto_runs_whole_frames_when_they_fit(checkpoint):
    batch = _batch()
    auto = _translator(checkpoint, memory_budget=2**30)
    output = auto.translate_batch(batch)
    assert auto.plans == {(1, 70, 134): None}
    assert torch.equal(output, _translator(checkpoint, tile=None).translate_batch(batch))


def test_tile_auto_tiles_when_the_budget_is_small(checkpoint):
    """Tolerance: float rounding only (staged tiles are exact), max abs 1e-5 on [-1,1]."""
    batch = _batch()
    probe = _translator(checkpoint)
    whole_bytes = probe.memory_profile().whole_bytes(1, 70, 134)
    small = _translator(checkpoint, memory_budget=int(whole_bytes * 0.75))
    output = small.translate_batch(batch)
    tile = small.plans[(1, 70, 134)]
    assert tile is not None and tile[0] * tile[1] < 70 * 134
    stage_tiles = small.stage_plan(1, 70, 134)
    assert len(stage_tiles) == len(small.stages)
    # every stage's tile is at least the uniform one, and the whole plan fits the budget
    assert all(each is None or each[0] * each[1] >= tile[0] * tile[1] for each in stage_tiles)
    assert small.planned_bytes(1, 70, 134) <= small.budget()
    assert small.planned_bytes(1, 70, 134) == small.memory_profile(staged=True).staged_bytes(1, 70, 134, tile,
                                                                                              stage_tiles)
    whole = _translator(checkpoint, tile=None).translate_batch(batch)
    assert float((output - whole).abs().max()) < 1e-5


def test_stage_tiles_are_the_largest_each_stage_allows():
    """Closed form: a stage whose activations fit the room whole runs whole; a cheaper stage or one
    with a smaller halo gets a larger tile than the uniform one; every stage fits the budget."""
    from semguard.translate.memory import MemoryProfile, describe_stage_tiles, stage_tile_sizes, staged_tile_size

    profile = MemoryProfile(whole=1000.0, staged_frame=100.0, stage_tiles=(400.0, 50.0, 400.0, 20.0),
                            stage_radii=(4, 12, 2, 12))
    height, width, multiple = 300, 400, 8
    room = 400.0 * 108 * 108                    # what one tile may take, per image
    budget = 2 * (100.0 * height * width + room)
    uniform = staged_tile_size(profile, 2, height, width, budget, multiple)
    assert uniform == (88, 80)                  # room / 400 px with the largest halo (12): side 84 -> 80
    tiles = stage_tile_sizes(profile, 2, height, width, budget, multiple)
    assert tiles[0] == (104, 96)                # halo 4: side 108 - 8 -> 96, then 11664 / 104 - 8 rows
    assert tiles[1] == (280, 280)               # room / 50 = 93312 px: side 305 - 24 -> 280
    assert tiles[2] == (104, 104)               # halo 2: side 108 - 4
    assert tiles[3] is None                     # 20 B/px x the whole frame (2.4e6) fits the room (4.7e6)
    for each, cost, radius in zip(tiles, profile.stage_tiles, profile.stage_radii):
        region = height * width if each is None else (each[0] + 2 * radius) * (each[1] + 2 * radius)
        assert cost * region <= room
    expected = 2 * (100.0 * height * width + max(400.0 * 112 * 104, 50.0 * 304 * 304, 400.0 * 108 * 108,
                                                 20.0 * height * width))
    assert profile.staged_bytes(2, height, width, uniform, tiles) == pytest.approx(expected)
    assert profile.staged_bytes(2, height, width, uniform, tiles) <= budget
    assert describe_stage_tiles(uniform, tiles) == "tiles 80x88; 1 of 4 stages whole, 3 in larger tiles"
    assert describe_stage_tiles(uniform, [uniform, None]) == "tiles 80x88; 1 of 2 stages whole, 0 in larger tiles"
    # a budget below even the full-frame state: every stage in STARVED_TILE tiles (the plan then warns),
    # not in the smallest, which would save almost nothing of what is over and cost many times the time
    from semguard.translate.memory import STARVED_TILE

    starved = stage_tile_sizes(profile, 2, height, width, 100.0 * height * width, multiple)
    assert STARVED_TILE == 128 and starved == [(128, 128)] * 4
    # just enough room for the smallest uniform tile: that one, not the starved size
    tight = 2 * (100.0 * height * width + 400.0 * (16 + 24) ** 2)
    assert staged_tile_size(profile, 2, height, width, tight, multiple) == (16, 16)


def test_measured_memory_is_per_pixel(checkpoint):
    import semguard.translate.memory as memory

    translator = _translator(checkpoint)
    small = memory.measure_whole(translator._probe_inputs, translator._generate, translator.device, 2)
    memory_probe = memory.PROBE_SIZE
    try:
        memory.PROBE_SIZE = (64, 128)
        large = memory.measure_whole(translator._probe_inputs, translator._generate, translator.device, 2)
    finally:
        memory.PROBE_SIZE = memory_probe
    assert small > 0 and abs(large - small) / small < 0.02


def test_allocator_overhead_follows_the_heap_mode(monkeypatch):
    """CPU estimates carry the measured heap overhead of the allocator mode in force; CUDA none."""
    import semguard.translate.memory as memory

    for kept in (False, True):
        monkeypatch.setattr(memory, "_heap_reuse", kept)
        factors = memory.CPU_ALLOCATOR_OVERHEAD[kept]
        assert memory.allocator_overhead(torch.device("cpu")) == (factors["whole"], factors["staged"])
        assert factors["whole"] >= 1.0 and factors["staged"] >= 1.0
    assert memory.allocator_overhead(torch.device("cuda", 0)) == (1.0, 1.0)


def test_memory_profile_estimates_include_the_overhead():
    from semguard.translate.memory import MemoryProfile, staged_tile_size

    plain = MemoryProfile(whole=1000.0, staged_frame=100.0, stage_tiles=(400.0, 100.0), stage_radii=(4, 2))
    heavy = MemoryProfile(whole=1000.0, staged_frame=100.0, stage_tiles=(400.0, 100.0), stage_radii=(4, 2),
                          overhead=(1.5, 1.25))
    assert heavy.whole_bytes(2, 30, 40) == 1.5 * 1000.0 * 2 * 30 * 40 == 1.5 * plain.whole_bytes(2, 30, 40)
    tile = (16, 24)
    expected = 1.25 * 2 * (100.0 * 300 * 400 + 400.0 * (16 + 8) * (24 + 8))
    assert heavy.staged_bytes(2, 300, 400, tile) == pytest.approx(expected)
    budget = 40e6
    plain_tile = staged_tile_size(plain, 2, 300, 400, budget, 8)
    heavy_tile = staged_tile_size(heavy, 2, 300, 400, budget, 8)
    assert heavy.staged_bytes(2, 300, 400, heavy_tile) <= budget
    assert heavy_tile[0] * heavy_tile[1] < plain_tile[0] * plain_tile[1]


def test_tile_auto_plans_with_the_heap_overhead(checkpoint, monkeypatch):
    """A budget between the tracked bytes and tracked x overhead: whole frames under glibc's default
    heap, tiles once freed memory is kept for reuse (as `semguard translate` does on CPU)."""
    import semguard.translate.memory as memory

    monkeypatch.setattr(memory, "CPU_ALLOCATOR_OVERHEAD", {False: {"whole": 1.0, "staged": 1.0},
                                                            True: {"whole": 1.5, "staged": 1.5}})
    monkeypatch.setattr(memory, "_heap_reuse", False)
    tracked = _translator(checkpoint).memory_profile().whole_bytes(1, 70, 134)
    budget = int(tracked * 1.25)
    default_heap = _translator(checkpoint, memory_budget=budget)
    assert default_heap.plan(1, 70, 134) is None
    monkeypatch.setattr(memory, "_heap_reuse", True)
    kept_heap = _translator(checkpoint, memory_budget=budget)
    assert kept_heap.memory_profile().whole_bytes(1, 70, 134) == pytest.approx(1.5 * tracked)
    tile = kept_heap.plan(1, 70, 134)
    assert tile is not None
    assert kept_heap.planned_bytes(1, 70, 134) <= budget


def test_memory_sizes_parse():
    from semguard.translate.memory import parse_memory_size

    assert parse_memory_size("auto") is None
    assert parse_memory_size("3GiB") == 3 * 2**30 and parse_memory_size("512MB") == 512_000_000
    assert parse_memory_size("2e9") == 2_000_000_000 and parse_memory_size(1024) == 1024
    for bad in ("lots", "-1GB", "0"):
        with pytest.raises(ValueError, match="memory size"):
            parse_memory_size(bad)


def test_cli_tile_auto_with_a_small_budget_says_it_tiles(checkpoint, source, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["translate", "--checkpoint", str(checkpoint), "--input", str(source), "--out", str(out),
                 "--workers", "0", "--device", "cpu", "--no-progress", "--memory-budget", "1.1MB"]) == 0
    assert re.search(r"budget: tiles \d+x\d+; \d+ of \d+ stages whole, \d+ in larger tiles", capsys.readouterr().err)
    _assert_carried_through(source, out)
    assert json.loads((out / "manifest.json").read_text())["header"]["tile"] == "auto"
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "--checkpoint", str(checkpoint), "--input", str(source), "--out", str(out),
              "--memory-budget", "lots"])
    assert exit_info.value.code == 2


def test_io_threads_default_to_the_main_process_on_a_small_cpu(monkeypatch):
    """translate's default decode workers / PNG writers: (0, 1) on a CPU of <= 4 cores (measured
    faster there, benchmarks/results/translate.md), (2, 2) on a GPU or a larger CPU; given values stay."""
    import os

    from semguard.translate.pipeline import io_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert io_threads(torch.device("cpu")) == (0, 1)
    assert io_threads(torch.device("cpu"), workers=3, writers=2) == (3, 2)
    assert io_threads(torch.device("cuda", 0)) == (2, 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert io_threads(torch.device("cpu")) == (2, 2)


def test_a_light_state_translator_warns_when_lights_carry_no_state(source, tmp_path, capsys):
    config = config_from_dict({"model": {"generator": "spade", "base_channels": 4, "n_blocks": 1, "n_downsample": 1,
                                         "conditioning": {"light_states": True}}})
    torch.manual_seed(0)
    generator, spec = build_generator(config.model)
    assert spec.light_states and spec.channels == 32
    lights = tmp_path / "lights.pt"
    save_translator(lights, config, generator, generator_ema=generator.state_dict(), step=1)
    assert _translate(lights, source, tmp_path / "with_states") == 0       # every light of the fixture is red
    captured = capsys.readouterr()
    assert "light states" not in captured.out + captured.err
    stateless = tmp_path / "stateless"
    for index, name in enumerate(NAMES):
        sample = _sample(index, name)
        write_sample(stateless, replace(sample, boxes=[Box(b.xyxy, b.class_id, b.instance_id) for b in sample.boxes]))
    assert _translate(lights, stateless, tmp_path / "without_states") == 0
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    assert f"{len(NAMES)} of the {len(NAMES)} traffic light boxes" in out and "model.conditioning.light_states" in out
    _assert_carried_through(stateless, tmp_path / "without_states")


def test_png_level_changes_the_bytes_not_the_pixels(checkpoint, source, tmp_path):
    """--png-level 0 stores the PNGs uncompressed, 9 at zlib's smallest: same pixels, labels and
    boxes; the level-0 image files are larger (the fixture's labels are random, so level 9 packs them)."""
    outputs = {level: tmp_path / f"out_{level}" for level in (0, 9)}
    for level, out in outputs.items():
        assert _translate(checkpoint, source, out, "--png-level", str(level)) == 0
        _assert_carried_through(source, out)
    for name in NAMES:
        stored, packed = (read_sample(outputs[level], name) for level in (0, 9))
        assert np.array_equal(stored.image, packed.image)
        h, w, _ = stored.image.shape
        raw = h * (1 + 3 * w)                      # one filter byte a row, then RGB
        image = lambda level: (outputs[level] / "images" / f"{name}.png").stat().st_size  # noqa: E731
        assert image(0) > raw > image(9)


def test_write_png_level_is_the_zlib_level(tmp_path):
    """write_png passes the level to the encoder: a flat image stays raw-sized at 0 and shrinks at 1."""
    flat = np.full((64, 64, 3), 7, np.uint8)
    write_png(tmp_path / "stored.png", flat, compress_level=0)
    write_png(tmp_path / "packed.png", flat, compress_level=1)
    assert (tmp_path / "stored.png").stat().st_size > 64 * (1 + 3 * 64)
    assert (tmp_path / "packed.png").stat().st_size < 1000
    with Image.open(tmp_path / "packed.png") as packed:
        assert np.array_equal(np.asarray(packed), flat)


def test_a_box_image_translator_reads_the_frame_inside_light_and_sign_boxes(source, tmp_path):
    """Translator builds the box-image channels from the frame it translates: its output equals the
    generator on the hand-built conditioning, whole and tiled (and differs from it without those
    pixels); `semguard translate` runs such a checkpoint end to end."""
    config = config_from_dict({"model": {"generator": "spade", "base_channels": 4, "n_blocks": 1, "n_downsample": 1,
                                         "conditioning": {"box_image": True}}})
    torch.manual_seed(0)
    generator, spec = build_generator(config.model)
    assert spec.box_image and spec.channels == 29 + 3
    path = tmp_path / "box_image.pt"
    save_translator(path, config, generator, generator_ema=generator.state_dict(), step=1)
    batch = collate_samples([_sample(1, "y")])
    condition = build_conditioning(batch.label, batch.instances, batch.boxes, spec, batch.image)
    assert condition[0, -3:, 2:9, 40:45].abs().sum() > 0                  # the light box (x 40..44.5, y 2..9)
    with torch.no_grad():
        expected = generator.eval()(batch.image, condition)
    whole = Translator.from_checkpoint(path, device="cpu", tile=None)
    tiled = Translator.from_checkpoint(path, device="cpu", tile=32, overlap=8)
    assert torch.allclose(whole.translate_batch(batch), expected, atol=1e-5)
    assert torch.allclose(tiled.translate_batch(batch), expected, atol=1e-5)
    blind = condition.clone()
    blind[:, -3:] = 0                                                     # the same conditioning without the pixels
    with torch.no_grad():
        assert not torch.allclose(generator(batch.image, blind), expected, atol=1e-4)
    assert _translate(path, source, tmp_path / "out") == 0
    _assert_carried_through(source, tmp_path / "out")
