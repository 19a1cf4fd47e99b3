"""The translator trainer: one loop for semguard and for every baseline (a baseline is a config).

Each step, on a (source, target) batch pair:
  1. generator step: translated = G(source, conditioning); the named generator terms
     (gan, nce, nce_identity, seg, box, attr; see semguard.train.objective) are weighted by
     config.loss and summed by semguard.losses.total.weighted_sum; Adam(lr_g) step.
  2. discriminator step on target (real) and translated.detach() (fake); Adam(lr_d) step.
     model.discriminator.kind chooses the adversary (patch: real/fake patches; segmentation:
     OASIS N+1 classes, trained on the target labels), optionally with a texture patch
     discriminator beside it; data.pairing layout_matched pairs each source crop with the
     best-agreeing target crop, and the patch discriminator may count agreeing pixels only.
  3. guide step (guide.mode cotrain: the guide learns the source labels on the translated
     images; cotrain_target: the target labels on the target images); Adam(guide.lr) step.
  4. EMA of the generator, learning-rate schedules.

Every loss term of every step is checked: a NaN or inf stops the run with a
NonFiniteLossError naming the term and the step, before any weight is updated with it;
the last checkpoint on disk stays the last good one.

Output folder (config.train.out):
    config.yaml                 fully resolved config of the run
    log.jsonl                   every term, every log_every steps (see semguard.train.run_log)
    tensorboard/                with train.logger: tensorboard, the log and the sample grids as TensorBoard events
    samples/step_XXXXXXXX.png   source | translated (EMA) | label overlay
    checkpoints/step_XXXXXXXX.pt  the last keep_last step checkpoints (resume points)
    final.pt                    the checkpoint at the last step (what translate/eval read)

Distributed: under torchrun every process runs this loop on its share of the data;
gradients are averaged by DistributedDataParallel; rank 0 writes files. Determinism:
on CPU a run is bitwise reproducible from its seed, and `resume` continues exactly
(weights, optimizer moments, schedules, EMA, RNG of torch/numpy/python, data position).
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from semguard.checkpoints import (
    TRANSLATOR,
    latest_step_checkpoint,
    load_checkpoint,
    load_crop_classifier,
    load_segmenter,
    remove_stale_temporaries,
    rotate_checkpoints,
    save_checkpoint,
    step_checkpoint_name,
    translator_checkpoint,
)
from semguard.config import RunConfig, config_to_dict, save_config
from semguard.config_checks import check_config, check_run, config_differences, needs_guide, target_label_users
from semguard.data.formats import open_dataset
from semguard.data.unpaired import build_unpaired_loader
from semguard.errors import ConfigError, SemguardError
from semguard.losses.adversary import build_adversary, build_discriminator
from semguard.losses.attribute_consistency import AttributeConsistencyLoss
from semguard.losses.box_perceptual import BoxPerceptualLoss, guide_feature_extractor, lpips_feature_extractor
from semguard.losses.class_weights import class_weight_vector
from semguard.losses.constraint import ConstraintMultiplier
from semguard.losses.patchnce import PatchSampler
from semguard.losses.seg_consistency import seg_consistency_loss
from semguard.losses.total import weighted_sum
from semguard.models import build_generator, build_texture_discriminator
from semguard.models.conditioning import build_conditioning
from semguard.models.segmenter import segmenter_features
from semguard.output_lock import hold_output
from semguard.train.data_stream import BatchStream
from semguard.train.distributed import (
    DistributedContext,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    init_distributed,
    shutdown_distributed,
)
from semguard.train.ema import ModelEma
from semguard.train.objective import FrozenHelpers, GeneratorObjective
from semguard.train.rng import capture_rng_state, restore_rng_state, seed_everything
from semguard.train.run_log import JsonlLog, ProgressDisplay, TensorBoardLog, require_tensorboard
from semguard.train.samples import preview_batch, write_sample_grid
from semguard.train.schedule import lr_factor

FINAL_CHECKPOINT = "final.pt"
CHECKPOINT_DIR = "checkpoints"
SAMPLE_DIR = "samples"
LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"
CONFIG_FILE = "config.yaml"
# the discriminator step's named terms, summed by weighted_sum like the generator's (the texture one is optional)
DISCRIMINATOR_WEIGHTS = {"d": 1.0, "d_patch": 1.0}


class NonFiniteLossError(SemguardError):
    """A loss term became NaN or inf; training stopped before using it."""


@dataclass
class TrainResult:
    out: Path
    final_checkpoint: Path
    step: int
    images_per_s: float
    last_terms: dict[str, float] = field(default_factory=dict)


def _guide_record(metadata: dict) -> dict:
    """Plain data on one guide for the translator checkpoint: its file, role and training data."""
    data = metadata.get("data") or {}
    return {"checkpoint": metadata.get("path"), "role": metadata.get("role"), "data": dict(data),
            "domain": data.get("domain")}


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class Trainer:
    """Builds everything a run needs from a RunConfig; `run(resume)` trains and returns a TrainResult."""

    def __init__(self, config: RunConfig, show_progress: bool = True,
                 context: DistributedContext | None = None) -> None:
        check_config(config)   # train() checks the files too (config_checks.check_run)
        if config.train.logger == "tensorboard":
            require_tensorboard()   # refuse before anything is built, not at the first logged step
        self.config = config
        self.context = context or init_distributed(config.train.device)
        self.device = self.context.device
        self.out = Path(config.train.out)
        self.show_progress = show_progress and self.context.is_main
        self.cuda = self.device.type == "cuda"
        self.amp = self.cuda and config.train.amp
        # train.channels_last (config.py): the discriminators, the guide and the crop classifier in
        # channels-last, and the generator with its batches in channels-last too on CUDA ("auto") or
        # as set; on CPU "auto" keeps the generator in NCHW (benchmarks/results/train_step_layout.md)
        layout = config.train.channels_last
        self.channels_last = layout is True or layout == "auto"
        self.generator_channels_last = self.cuda if layout == "auto" else bool(layout)
        self._previous_determinism = torch.are_deterministic_algorithms_enabled()
        self._previous_fill = torch.utils.deterministic.fill_uninitialized_memory
        if not self.cuda:
            torch.use_deterministic_algorithms(True, warn_only=True)
            # filling every new tensor with NaN (the default in deterministic mode) costs ~30% of a CPU step
            # and buys nothing here: semguard reads no uninitialised memory
            torch.utils.deterministic.fill_uninitialized_memory = False
        try:
            seed_everything(config.train.seed)   # identical initial weights on every rank
            self._build_data()
            self._build_models()
            self._build_optimizers()
        except BaseException:
            self.close()
            raise
        self.step = 0
        # each rank draws its own training randomness (PatchNCE patch positions, ...)
        seed_everything(config.train.seed + 7919 * self.context.rank)

    # ------------------------------------------------------------------ building

    def _build_data(self) -> None:
        data = self.config.data
        self.source_dataset = open_dataset(data.source, data.source_format, **data.source_options)
        self.target_dataset = self._open_target()
        loader = build_unpaired_loader(
            self.source_dataset, self.target_dataset, crop=tuple(data.crop), batch_size=data.batch_size,
            workers=data.workers, seed=self.config.train.seed, small_box_crop_prob=data.small_box_crop_prob,
            hflip=data.hflip, resize=tuple(data.resize) if data.resize else None, distributed=self.context.distributed,
            pairing=data.pairing, pairing_candidates=data.pairing_candidates, pairing_grid=data.pairing_grid,
        )
        self.stream = BatchStream(loader)
        self.preview = None
        if self.context.is_main and self.config.train.sample_count > 0:
            self.preview = preview_batch(self.source_dataset, self.config.train.sample_count, tuple(data.crop),
                                         tuple(data.resize) if data.resize else None)

    def _open_target(self):
        """The target data set: images only, unless a setting needs its labels (config_checks.check_run
        has checked that they are there)."""
        data = self.config.data
        options = {"labels_required": False, **data.target_options}
        if target_label_users(self.config):
            options["labels_required"] = True
        return open_dataset(data.target, data.target_format, **options)

    def _build_models(self) -> None:
        config, device = self.config, self.device
        generator, self.spec = build_generator(config.model)   # data.crop fits it (config_checks.check_config)
        discriminator = build_discriminator(config.model)
        texture_discriminator = build_texture_discriminator(config.model)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        generator = generator.to(device, memory_format=(torch.channels_last if self.generator_channels_last
                                                        else torch.contiguous_format))
        discriminator = discriminator.to(device, memory_format=memory_format)
        if texture_discriminator is not None:
            texture_discriminator = texture_discriminator.to(device, memory_format=memory_format)
        self.adversary = build_adversary(config.loss, config.model.discriminator)
        self.texture_adversary = (build_adversary(config.loss, config.model.discriminator, kind="patch")
                                  if texture_discriminator is not None else None)

        patch_sampler = None
        if config.loss.nce > 0 or config.loss.nce_identity > 0:
            patch_sampler = PatchSampler(generator.encode_channels(tuple(config.loss.nce_layers)),
                                         mlp_channels=config.loss.nce_mlp_channels).to(device)

        self.guide = None
        self.guide_metadata = None
        if needs_guide(config):
            guide, self.guide_metadata = load_segmenter(config.guide.checkpoint, device=str(device),
                                                        expected_role="guide")
            self.guide = guide.to(device, memory_format=memory_format)
            self.guide.eval().requires_grad_(False)
        self.extra_guides: list[nn.Module] = []
        self.extra_guide_metadata: list[dict] = []
        if config.loss.seg > 0:
            for path in config.guide.ensemble:
                extra, metadata = load_segmenter(path, device=str(device), expected_role="guide")
                self.extra_guides.append(extra.to(device, memory_format=memory_format).eval().requires_grad_(False))
                self.extra_guide_metadata.append(metadata)

        box_loss = None
        if config.loss.box > 0:
            box_loss = self._build_box_loss()
        attr_loss = None
        if config.loss.attr > 0:
            classifier, _ = load_crop_classifier(config.guide.crop_classifier, device=device)
            attr_loss = AttributeConsistencyLoss(classifier.to(memory_format=memory_format).requires_grad_(False))
        discriminator.requires_grad_(False)   # trainable only inside the discriminator step
        if texture_discriminator is not None:
            texture_discriminator.requires_grad_(False)
        seg_class_weights = None
        if config.loss.seg_class_weights:
            seg_class_weights = class_weight_vector(config.loss.seg_class_weights, where="loss.seg_class_weights").to(device)
        helpers = FrozenHelpers(discriminator=discriminator, guide=self.guide, box_loss=box_loss,
                                attr_loss=attr_loss,
                                seg_class_weights=seg_class_weights, adversary=self.adversary,
                                texture_discriminator=texture_discriminator, texture_adversary=self.texture_adversary,
                                extra_guides=tuple(self.extra_guides), guide_perturb=float(config.guide.perturb),
                                ensemble_reduce=config.guide.ensemble_reduce)
        self.generator = generator
        self.discriminator = discriminator
        self.texture_discriminator = texture_discriminator
        self.patch_sampler = patch_sampler
        self.objective = GeneratorObjective(generator, patch_sampler, config.loss, helpers)
        self.weights = self.objective.weights   # one dict: the seg multiplier's weight is the objective's too
        # loss.seg_target: the seg term's weight is a Lagrange multiplier (semguard.losses.constraint)
        self.seg_multiplier = None
        if config.loss.seg_target is not None and self.weights["seg"] > 0:
            loss = config.loss
            self.seg_multiplier = ConstraintMultiplier(loss.seg, loss.seg_target, rate=loss.seg_target_rate,
                                                       smoothing=loss.seg_target_smoothing, low=loss.seg_weight_min,
                                                       high=loss.seg_weight_max)
        self.ema = ModelEma(generator, config.train.ema_decay)

        self.objective_model: nn.Module = self.objective
        self.discriminator_model: nn.Module = discriminator
        self.texture_discriminator_model: nn.Module | None = texture_discriminator
        self.guide_model: nn.Module | None = self.guide if self.guide_trains else None
        if self.context.distributed:
            ids = [device.index] if self.cuda else None
            DDP = nn.parallel.DistributedDataParallel
            self.objective_model = DDP(self.objective, device_ids=ids)
            discriminator.requires_grad_(True)
            self.discriminator_model = DDP(discriminator, device_ids=ids)
            discriminator.requires_grad_(False)
            if texture_discriminator is not None:
                texture_discriminator.requires_grad_(True)
                self.texture_discriminator_model = DDP(texture_discriminator, device_ids=ids)
                texture_discriminator.requires_grad_(False)
            if self.guide_trains:
                self.guide.requires_grad_(True)
                self.guide_model = DDP(self.guide, device_ids=ids)
                self.guide.requires_grad_(False)

    @property
    def cotrain(self) -> bool:
        return self.guide is not None and self.config.guide.mode == "cotrain" and self.config.loss.seg > 0

    @property
    def cotrain_target(self) -> bool:
        return self.guide is not None and self.config.guide.mode == "cotrain_target"

    @property
    def guide_trains(self) -> bool:
        """Whether the guide has its own optimisation step (cotrain or cotrain_target)."""
        return self.cotrain or self.cotrain_target

    def _discriminator_parameters(self) -> list[nn.Parameter]:
        parameters = list(self.discriminator.parameters())
        if self.texture_discriminator is not None:
            parameters += list(self.texture_discriminator.parameters())
        return parameters

    def _build_box_loss(self):
        loss = self.config.loss
        if loss.box_backbone == "guide":
            extractor = guide_feature_extractor(self.guide, segmenter_features)
        else:
            extractor = lpips_feature_extractor(loss.box_backbone.split("-", 1)[1])
        box_loss = BoxPerceptualLoss(extractor, dict(loss.box_class_weights) or None)
        if isinstance(box_loss, nn.Module):
            box_loss = box_loss.to(self.device)
            box_loss.requires_grad_(False)
        return box_loss

    def _build_optimizers(self) -> None:
        train = self.config.train
        generator_parameters = [p for p in self.objective.parameters() if p.requires_grad]
        self.optimizer_g = torch.optim.Adam(generator_parameters, lr=train.lr_g, betas=tuple(train.betas))
        self.optimizer_d = torch.optim.Adam(self._discriminator_parameters(), lr=train.lr_d,
                                            betas=tuple(train.betas))
        factor = lr_factor(train.lr_schedule, train.steps, train.decay_start)
        self.scheduler_g = torch.optim.lr_scheduler.LambdaLR(self.optimizer_g, factor)
        self.scheduler_d = torch.optim.lr_scheduler.LambdaLR(self.optimizer_d, factor)
        self.optimizer_guide = None
        if self.guide_trains:
            self.optimizer_guide = torch.optim.Adam(list(self.guide.parameters()), lr=self.config.guide.lr,
                                                    betas=tuple(train.betas))

    # ------------------------------------------------------------------ state

    def state_dict(self, rng_states: list[dict]) -> dict:
        """The self-describing checkpoint of the current step (see semguard.checkpoints)."""
        state = translator_checkpoint(
            self.config, self.generator, self.ema.state_dict(), self.step,
            discriminator=self.discriminator.state_dict(),
            patch_sampler=self.patch_sampler.state_dict() if self.patch_sampler is not None else None,
            optimizers={"generator": self.optimizer_g.state_dict(), "discriminator": self.optimizer_d.state_dict()},
            schedulers={"generator": self.scheduler_g.state_dict(), "discriminator": self.scheduler_d.state_dict()},
            rng=rng_states,                       # one entry per rank
            loader=self.stream.state_dict(),
            world_size=self.context.world_size,
        )
        if self.texture_discriminator is not None:
            state["texture_discriminator"] = self.texture_discriminator.state_dict()
        if self.seg_multiplier is not None:
            state["seg_multiplier"] = self.seg_multiplier.state_dict()
        if self.guide_trains:
            state["guide"] = self.guide.state_dict()
            state["optimizers"]["guide"] = self.optimizer_guide.state_dict()
        if self.guide_metadata is not None or self.config.guide.checkpoint:
            state["guide_checkpoint"] = self.config.guide.checkpoint
        if self.guide_metadata is not None:
            # what each guide learnt from (e.g. source labels on sim, or target labels on real images)
            state["guides"] = [_guide_record(self.guide_metadata)] + [_guide_record(m) for m in self.extra_guide_metadata]
        return state

    def load_state_dict(self, state: dict, source: Path) -> None:
        differences = config_differences(state.get("config", {}), config_to_dict(self.config))
        if differences:
            raise ConfigError(
                f"cannot resume from {source}: the config differs in {', '.join(differences)}; resume with the "
                f"run's own config ({self.out / CONFIG_FILE}) or start a new run in another train.out"
            )
        try:
            self.generator.load_state_dict(state["generator"])
            self.ema.load_state_dict(state["generator_ema"])
            self.discriminator.load_state_dict(state["discriminator"])
            if self.texture_discriminator is not None:
                self.texture_discriminator.load_state_dict(state["texture_discriminator"])
            if self.patch_sampler is not None:
                self.patch_sampler.load_state_dict(state["patch_sampler"])
            self.optimizer_g.load_state_dict(state["optimizers"]["generator"])
            self.optimizer_d.load_state_dict(state["optimizers"]["discriminator"])
            self.scheduler_g.load_state_dict(state["schedulers"]["generator"])
            self.scheduler_d.load_state_dict(state["schedulers"]["discriminator"])
            if self.guide_trains:
                self.guide.load_state_dict(state["guide"])
                self.optimizer_guide.load_state_dict(state["optimizers"]["guide"])
            if self.seg_multiplier is not None:
                self.seg_multiplier.load_state_dict(state["seg_multiplier"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise SemguardError(f"checkpoint {source} does not fit this run's models ({type(err).__name__}: "
                                f"{str(err).splitlines()[0]}); it was written by another semguard version or config") from None
        self.step = int(state["step"])
        self.stream.load_state_dict(state["loader"])
        rng_states = state["rng"]
        if len(rng_states) == self.context.world_size:
            restore_rng_state(rng_states[self.context.rank], self.device)
        else:   # another world size: exact continuation is impossible; reseed per rank and step
            seed_everything(self.config.train.seed + 7919 * self.context.rank + self.step)

    def save(self, path: Path) -> None:
        """Collective: every rank contributes its RNG state; rank 0 writes `path` atomically."""
        rng_states = all_gather_objects(capture_rng_state(self.device), self.context)
        if self.context.is_main:
            save_checkpoint(path, self.state_dict(rng_states))

    # ------------------------------------------------------------------ the loop

    def _prepare_out(self, resume: bool) -> Path | None:
        """Check the output folder; returns the checkpoint to resume from (or None)."""
        checkpoints = self.out / CHECKPOINT_DIR
        latest = latest_step_checkpoint(checkpoints)
        if not resume and (latest is not None or (self.out / FINAL_CHECKPOINT).exists()):
            raise SemguardError(
                f"{self.out} already holds a training run; pass --resume to continue it, "
                "or choose another output folder (--out or train.out)"
            )
        barrier(self.context)
        if self.context.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out / CONFIG_FILE)
        return latest if resume else None

    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _check_finite(self, terms: dict[str, torch.Tensor], prefix: str = "") -> dict[str, float]:
        """Mean of each term over ranks; NonFiniteLossError when any is NaN or inf (same decision on every rank)."""
        names = list(terms)
        values = all_reduce_mean(torch.stack([terms[name].detach().float() for name in names]), self.context)
        result = dict(zip(names, values.tolist()))
        for name, value in result.items():
            if not math.isfinite(value):
                last = latest_step_checkpoint(self.out / CHECKPOINT_DIR)
                where = (f"the last good checkpoint is {last} (continue with --resume after lowering train.lr_g / "
                         "train.lr_d or setting train.grad_clip)") if last else "no checkpoint was written before it"
                raise NonFiniteLossError(f"loss term '{prefix}{name}' is {value} at step {self.step + 1}; "
                                         f"training stopped without applying it; {where}")
        return result

    def _to_device(self, batch):
        batch = batch.to(self.device, non_blocking=True)
        if self.generator_channels_last:   # batches in the generator's layout; the other networks convert
            batch.image = batch.image.contiguous(memory_format=torch.channels_last)
        return batch

    def _condition(self, batch) -> torch.Tensor | None:
        condition = build_conditioning(batch.label, batch.instances, batch.boxes, self.spec, batch.image)
        if condition is not None and self.generator_channels_last:
            condition = condition.contiguous(memory_format=torch.channels_last)
        return condition

    def _clip(self, parameters) -> None:
        if self.config.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(list(parameters), self.config.train.grad_clip)

    def _agreement(self, source, target) -> torch.Tensor | None:
        """float [B,H,W]: 1 where the paired source and target labels agree (both labelled), for the agreement mask."""
        if not self.config.model.discriminator.agreement_mask:
            return None
        agree = (source.label == target.label) & (source.label != 255) & (target.label != 255)
        return agree.to(torch.float32)

    def _pairing_stats(self, target) -> dict[str, float]:
        """Mean layout agreement of the batch's pairs and the share at or above data.pairing_threshold."""
        agreement = target.layout_agreement
        if agreement is None:
            return {}
        threshold = self.config.data.pairing_threshold
        stats = torch.stack([agreement.mean(), (agreement >= threshold).float().mean()]).to(self.device)
        stats = all_reduce_mean(stats, self.context).tolist()
        return {"pair_agreement": stats[0], "pair_match_rate": stats[1]}

    def _update(self, terms: dict[str, torch.Tensor], weights: dict[str, float], optimizer,
                parameters) -> dict[str, float]:
        """Check every term (NonFiniteLossError before any weight moves), then one optimiser step on their
        weighted sum; returns each term's mean over ranks."""
        logged = self._check_finite(terms)
        total = weighted_sum(terms, weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        self._clip(parameters)
        optimizer.step()
        return logged

    def _discriminator_terms(self, target, fake: torch.Tensor, fake_label: torch.Tensor,
                             agreement) -> dict[str, torch.Tensor]:
        """The adversaries' named terms ("d", and "d_patch" for a texture discriminator) on the target images
        (real) and the detached translations (fake, keeping the source labels `fake_label`); one forward
        over both per discriminator."""
        both = torch.cat([target.image, fake.to(target.image.dtype)])
        adversaries = [("d", self.adversary, self.discriminator_model)]
        if self.texture_discriminator is not None:
            adversaries.append(("d_patch", self.texture_adversary, self.texture_discriminator_model))
        terms = {}
        for name, adversary, model in adversaries:
            real_logits, fake_logits = adversary.split(model(both), target.image.shape[0])
            terms[name] = adversary.discriminator_term(real_logits, target.label, fake_logits, fake_label, agreement)
        return terms

    def _guide_step(self, name: str, image: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
        """One update of a training guide (guide.mode cotrain / cotrain_target) on `label` read off `image`."""
        self.guide.train().requires_grad_(True)
        with self._autocast():
            loss = seg_consistency_loss(self.guide_model(image).float(), label, self.objective.helpers.seg_class_weights)
        logged = self._update({name: loss}, {name: 1.0}, self.optimizer_guide, self.guide.parameters())
        self.guide.eval().requires_grad_(False)
        return logged

    def train_step(self) -> dict[str, float]:
        """One generator, discriminator (and guide) update; returns every term's mean over ranks."""
        source, target = (self._to_device(batch) for batch in self.stream.next())
        condition = self._condition(source)
        target_condition = self._condition(target) if self.weights["nce_identity"] > 0 else None
        agreement = self._agreement(source, target)
        if self.seg_multiplier is not None:
            self.weights["seg"] = self.seg_multiplier.value

        self.generator.train()
        with self._autocast():
            translated, generator_terms = self.objective_model(source.image, condition, source.label, source.boxes,
                                                               target.image, target_condition, agreement)
        logged = self._update(generator_terms, self.weights, self.optimizer_g, self.objective.parameters())
        if self.seg_multiplier is not None:   # the rank mean of the term: the same multiplier on every rank
            logged["seg_weight"] = self.weights["seg"]
            self.seg_multiplier.update(logged["seg"])

        discriminators = [self.discriminator, self.texture_discriminator]
        for module in filter(None, discriminators):
            module.requires_grad_(True)
        with self._autocast():
            d_terms = self._discriminator_terms(target, translated.detach(), source.label, agreement)
        logged.update(self._update(d_terms, DISCRIMINATOR_WEIGHTS, self.optimizer_d, self._discriminator_parameters()))
        for module in filter(None, discriminators):
            module.requires_grad_(False)

        if self.cotrain_target:   # the guide keeps learning the target labels on target images, never translations
            logged.update(self._guide_step("guide_seg_target", target.image, target.label))
        if self.cotrain:          # ... or the source labels on the translations
            logged.update(self._guide_step("guide_seg", translated.detach(), source.label))

        self.step += 1
        self.ema.update(self.generator, self.step)
        self.scheduler_g.step()
        self.scheduler_d.step()
        logged["loss_g"] = float(sum(self.weights[name] * logged[name] for name in generator_terms))
        logged.update(self._pairing_stats(target))
        return logged

    @torch.no_grad()
    def write_samples(self) -> Path | None:
        if not self.context.is_main or self.preview is None:
            return None
        batch = self._to_device(self.preview)
        condition = self._condition(batch)
        with self._autocast():
            translated = self.ema.model(batch.image, condition)
        return write_sample_grid(self.out / SAMPLE_DIR / f"step_{self.step:08d}.png", batch.image.float().cpu(),
                                 translated.float().cpu(), batch.label.cpu())

    def run(self, resume: bool = False) -> TrainResult:
        train = self.config.train
        resume_from = self._prepare_out(resume)
        if resume_from is not None:
            self.load_state_dict(load_checkpoint(resume_from, kind=TRANSLATOR), resume_from)
        log = JsonlLog(self.out / LOG_FILE)
        if self.context.is_main:
            log.truncate_after(self.step)
        images_per_step = self.config.data.batch_size * self.context.world_size
        window_terms: dict[str, float] = {}
        window_steps, window_start = 0, time.perf_counter()
        run_start, run_start_step = window_start, self.step
        last_terms: dict[str, float] = {}
        images_per_s = 0.0
        # purge_step, like truncate_after: TensorBoard hides what a killed run logged past this step
        board = TensorBoardLog(self.out / TENSORBOARD_DIR, purge_step=self.step + 1,
                               enabled=self.context.is_main and train.logger == "tensorboard")
        with ProgressDisplay(train.steps, self.step, self.show_progress) as progress, board:
            if resume_from is not None:
                progress.print(f"resumed from {resume_from} at step {self.step}")
            elif resume:
                progress.print(f"no checkpoint in {self.out / CHECKPOINT_DIR}: starting at step 0")
            while self.step < train.steps:
                terms = self.train_step()
                last_terms = terms
                for name, value in terms.items():
                    window_terms[name] = window_terms.get(name, 0.0) + value
                window_steps += 1
                final_step = self.step == train.steps
                if (train.log_every and self.step % train.log_every == 0) or final_step:
                    if self.cuda:
                        torch.cuda.synchronize(self.device)
                    now = time.perf_counter()
                    images_per_s = window_steps * images_per_step / max(now - window_start, 1e-9)
                    means = {name: value / window_steps for name, value in window_terms.items()}
                    if self.context.is_main:
                        record = {"step": self.step, "time": round(now - run_start, 3),
                                  "images_per_s": round(images_per_s, 3),
                                  "lr_g": self.optimizer_g.param_groups[0]["lr"],
                                  "lr_d": self.optimizer_d.param_groups[0]["lr"], "terms": means}
                        log.write(record)
                        board.write(record, loss_d=means["d"] + means.get("d_patch", 0.0))   # train_step's d_loss
                    progress.update(self.step, images_per_s, means)
                    window_terms, window_steps, window_start = {}, 0, time.perf_counter()
                else:
                    progress.update(self.step)
                if (train.sample_every and self.step % train.sample_every == 0) or final_step:
                    grid = self.write_samples()
                    if grid is not None:
                        board.write_sample_grid(self.step, grid)
                if (train.checkpoint_every and self.step % train.checkpoint_every == 0) or final_step:
                    self.save(self.out / CHECKPOINT_DIR / step_checkpoint_name(self.step))
                    if self.context.is_main:
                        rotate_checkpoints(self.out / CHECKPOINT_DIR, train.keep_last)
        final = self.out / FINAL_CHECKPOINT
        self.save(final)
        barrier(self.context)
        elapsed = time.perf_counter() - run_start
        steps_done = self.step - run_start_step
        mean_speed = steps_done * images_per_step / elapsed if steps_done and elapsed > 0 else images_per_s
        return TrainResult(out=self.out, final_checkpoint=final, step=self.step, images_per_s=mean_speed,
                           last_terms=last_terms)

    def close(self) -> None:
        torch.use_deterministic_algorithms(self._previous_determinism)
        torch.utils.deterministic.fill_uninitialized_memory = self._previous_fill
        shutdown_distributed(self.context)


def train(config: RunConfig, resume: bool = False, show_progress: bool = True) -> TrainResult:
    """Train a translator as `config` says; `resume` continues the run in config.train.out.

    The whole run is checked first (config_checks.check_run: keys, memory, files, run folder); then
    rank zero holds train.out (semguard.output_lock: a second run into it stops at once, naming the
    first) and removes the temporary files a killed run left there."""
    rank_zero = int(os.environ.get("RANK", "0")) == 0
    check_run(config, rank_zero=rank_zero)
    out = Path(config.train.out)
    with hold_output(out, "train", "train.out (--out)") if rank_zero else nullcontext():
        if rank_zero:
            remove_stale_temporaries(out, out / CHECKPOINT_DIR, out / SAMPLE_DIR)
        trainer = Trainer(config, show_progress=show_progress)
        try:
            return trainer.run(resume=resume)
        finally:
            trainer.close()
