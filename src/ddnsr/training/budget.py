"""A time budget: ``--minutes N`` fits the whole schedule to N minutes of wall clock.

The run starts with the configured step count, times the first :data:`PROBE_STEPS` steps (the first
one, which pays for warm-up and data loading, is left out of the rate), and then sets the step count
so that the rest fits: ``steps = done + (budget - elapsed - reserve) / seconds_per_step``. Steps often
get faster after the first few (measured on 2 CPU cores: 5.8 s at first, 4.8 s a hundred steps on), so
the count is fitted once more, from the steps since the first fit, after :data:`REFIT_SHARE` of the run
(before its first save and validation). The phases of the learning-rate schedule scale with the step
count (config.PHASES), and the PSNR warm-up and the R hold keep their share of the run. The fitted count
goes into config.json (and the checkpoints) as ``steps`` and ``fitted_steps``, so ``--resume`` continues
the same schedule (a run resumed between the two fits keeps the first). As a guard the loop also stops
(and exports) when the wall clock passes the budget.
"""

from __future__ import annotations

import dataclasses
import time

from ddnsr.training.config import TrainConfig

__all__ = ["PROBE_STEPS", "REFIT_SHARE", "Budget", "fit_steps"]

PROBE_STEPS = 4
REFIT_SHARE = 0.2  # the second fit comes this share of the fitted run after the first
RESERVE_S = 0.06  # share of the budget kept for checkpoints, validation and the export


def fit_steps(cfg: TrainConfig, done: int, elapsed_s: float, seconds_per_step: float) -> TrainConfig:
    """``cfg`` with ``steps`` (and warm-up, hold, save/sample intervals) fitted to ``cfg.minutes``.

    ``done`` steps took ``elapsed_s`` seconds since the start; later steps take ``seconds_per_step``.
    """
    budget = cfg.minutes * 60.0
    left = budget * (1.0 - RESERVE_S) - elapsed_s
    steps = max(done + 1, done + int(left / max(seconds_per_step, 1e-6)))
    ratio = steps / cfg.steps

    def scaled(n: int) -> int:
        return min(steps, round(n * ratio)) if n else 0

    return dataclasses.replace(
        cfg, steps=steps, fitted_steps=steps, psnr_warmup=scaled(cfg.psnr_warmup), r_start=scaled(cfg.r_start),
        save_every=max(1, min(cfg.save_every, steps // 4 or 1)), sample_every=max(1, min(cfg.sample_every,
                                                                                            steps // 4 or 1)),
    )


class Budget:
    """The wall clock of a ``--minutes`` run: when to fit the steps, and when time is up."""

    def __init__(self, cfg: TrainConfig, start_step: int, t0: float) -> None:
        """``t0``: ``time.monotonic()`` when the command started (the budget counts from there)."""
        self.active = cfg.minutes is not None and cfg.fitted_steps is None
        self.minutes = cfg.minutes if self.active else None
        self.t0 = t0
        self.start_step = start_step
        self.t_first: float | None = None
        self.first_fit: tuple[TrainConfig, int, float] | None = None  # (config before it, step, time)
        self.refit_step = 0

    def after_step(self, cfg: TrainConfig, step: int) -> TrainConfig | None:
        """Call after each step (``step`` done so far). Returns a newly fitted config (at most twice), else None."""
        if not self.active:
            return None
        now, done = time.monotonic(), step - self.start_step
        if done == 1:
            self.t_first = now
        if self.first_fit is None:
            if done < PROBE_STEPS or self.t_first is None:
                return None
            fitted = fit_steps(cfg, step, now - self.t0, (now - self.t_first) / (done - 1))
            self.first_fit = (cfg, step, now)
            self.refit_step = step + max(PROBE_STEPS, round(REFIT_SHARE * fitted.steps))
            self.active = self.refit_step < fitted.steps
            return fitted
        if step < self.refit_step:
            return None
        self.active = False
        base, first_step, first_time = self.first_fit
        fitted = fit_steps(base, step, now - self.t0, (now - first_time) / (step - first_step))
        return fitted if fitted.steps != cfg.steps else None

    def time_up(self) -> bool:
        """True when the budget's wall clock has passed (only for the run that fitted its steps, not a resumed one)."""
        return self.minutes is not None and time.monotonic() - self.t0 > self.minutes * 60.0 * (1.0 - RESERVE_S / 2)
