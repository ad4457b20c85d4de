"""What the tokenizer's and the prior's training loops share: the learning-rate schedules, the run's
clock across resumes, when to write a checkpoint, and the log."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch


def warmup(step: int, steps: int) -> float:
    """Linear warm-up factor over the first `steps` steps."""
    return min(1.0, (step + 1) / steps)


def cosine(step: int, steps: int) -> float:
    """Cosine decay factor from 1 at step 0 to 0 at `steps`."""
    return 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps)))


def decay(step: int, start: int, end: int) -> float:
    """1 until step `start`, then a cosine down to 0 at `end` (start 0: no decay). Both are steps of the
    run, not of a stretch, so a stretch that stops and resumes keeps the same curve."""
    return 1.0 if not start or step < start else cosine(step - start, end - start)


def set_lr(optimizers: list[torch.optim.Optimizer], lr: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr


@dataclass
class RunClock:
    """A run's wall time, counted across resumes, and the limits that end it with a checkpoint:
    `minutes` of wall time in all, `stop_after` steps and `stretch_minutes` of wall time in this process
    (0: no limit)."""
    minutes: float
    stop_after: int
    first_step: int
    started: float  # time.time() at which the run would have started, had it never stopped
    stretch_minutes: float = 0.0
    stretch_started: float = 0.0

    @classmethod
    def resumed(cls, step: int, wall_seconds: float, minutes: float, stop_after: int,
                stretch_minutes: float = 0.0) -> "RunClock":
        now = time.time()
        return cls(minutes, stop_after, step, now - wall_seconds, stretch_minutes, now)

    def seconds(self) -> float:
        return time.time() - self.started

    def out_of_time(self, step: int) -> bool:
        return bool(self.minutes and self.seconds() > self.minutes * 60
                    or self.stretch_minutes and time.time() - self.stretch_started > self.stretch_minutes * 60
                    or self.stop_after and step - self.first_step >= self.stop_after)


def checkpoint_due(step: int, every: int, steps: int, stopping: bool) -> bool:
    return step % every == 0 or step == steps or stopping


def log_line(path: Path, record: dict) -> None:
    """Append one JSON line to a run's log and close it: a run may be killed any time."""
    with open(path, "a") as log:
        log.write(json.dumps(record) + "\n")
