"""What a run reports: log.csv and loss_curve.png (always), TensorBoard events (when `tensorboard` is installed),
and the lines printed at the start and after every epoch."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import yaml

from petr_ros import fileio

LOG_COLUMNS = (
    "epoch", "train_loss", "val_mpjpe_mm", "val_p_mpjpe_mm", "lr", "loss_mpjpe", "loss_rotation", "loss_vector",
    "loss_limit", "epoch_seconds", "samples_per_second",
)  # lr: the one the epoch trained with; loss_*: the loss terms' epoch means (rotation, vector: PEBRT; limit: on)
TENSORBOARD_DIR = "tensorboard"


def write_log(output: Path, history: list[dict[str, Any]]) -> None:
    """log.csv (one row per epoch) and loss_curve.png, both rewritten atomically from the history."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    fileio.write_text(output / "log.csv", buf.getvalue())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], "o-", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [row["val_mpjpe_mm"] for row in history], "s--", color="tab:red", label="val MPJPE (mm)")
    ax2.set_ylabel("val MPJPE (mm)")
    fig.legend(loc="upper right")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    fileio.write_bytes(output / "loss_curve.png", png.getvalue())


class TensorBoardLog:
    """Per-epoch scalars as TensorBoard event files in <output>/tensorboard, when tensorboard is installed."""

    def __init__(self, output: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional dependency: CSV and PNG are always written
            self.writer = None
            return
        self.writer = SummaryWriter(log_dir=str(output / TENSORBOARD_DIR))

    @property
    def active(self) -> bool:
        return self.writer is not None

    def add_epoch(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key in LOG_COLUMNS[1:]:
            if key in row:
                self.writer.add_scalar(key, float(row[key]), int(row["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def describe_start(config: dict[str, Any], data: dict[str, Any], notes: list[str]) -> str:
    """The resolved settings and the data's sample counts, printed before the first epoch."""
    lines = ["training with the resolved settings:", yaml.safe_dump(config, sort_keys=False).rstrip()]
    lines += ["data: " + ", ".join(f"{k} {v}" for k, v in data.items())]
    lines += notes
    return "\n".join(lines)


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    text = (
        f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.5f}  val MPJPE {row['val_mpjpe_mm']:.1f} mm  "
        f"P-MPJPE {row['val_p_mpjpe_mm']:.1f} mm  lr {row['lr']:.2e}  {row['epoch_seconds']:.1f} s"
    )
    if "loss_rotation" in row:
        text += f"  (rotation {row['loss_rotation']:.4f}, vector {row['loss_vector']:.4f})"
    return text


def echo(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
