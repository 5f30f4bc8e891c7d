"""The CTC sequence recogniser: strips of handwritten digits -> bidirectional LSTM over columns -> CTC.

    lstmkit ctc make-strips --out data/strips --count 5000
    lstmkit ctc make-strips --out data/strips_test --count 1000 --half test
    lstmkit ctc train data/strips --out runs/ctc --minutes 15
    lstmkit ctc decode runs/ctc data/strips_test --beam 10
    lstmkit ctc predict runs/ctc strip.png

Training is ``model.fit`` on the shared loop with ``lk.CTCLoss`` (targets packed with their lengths),
the character error rate of best-path decoding as the validation metric (best.npz, early stopping),
resume, Ctrl-C and NaN stop. Class 0 is the blank; digit d is class d + 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import functional, modelfile
from ..ctc import CTCLoss
from ..data.dataset import Subset
from ..data.strips import (
    HEIGHT,
    StripError,
    StripSet,
    load_strips,
    make_strips,
    read_image,
    save_strips,
    to_height,
    write_png,
)
from ..decoding import character_error_rate, ctc_beam_search, ctc_greedy
from ..distributed import launched
from ..fitting import fit
from ..models import CTCRecognizer
from ..optim import AdamW
from ..runs import run_file
from ..training import History
from .common import budget, holdout, open_run

FORMAT = "lstmkit-ctc"
CLASSES = 11                                     # blank + 10 digits


@dataclass
class CTCConfig:
    """Everything a recogniser run is made of; stored in its checkpoints."""

    data: str
    hidden: int = 128
    layers: int = 2
    batch_size: int = 32
    lr: float = 3e-3
    val_fraction: float = 0.1
    patience: int | None = None
    seed: int = 0


def make(out: str | Path, count: int, half: str = "train", seed: int = 0, examples: int = 5) -> Path:
    """Write ``out/strips.npz`` (and a few example PNGs) of ``count`` strips from one half of the digits."""
    out = Path(out)
    if count < 1 or half not in ("train", "test"):
        raise StripError(f"make-strips: count must be >= 1 and half 'train' or 'test', got {count}, {half!r}")
    if (out / "strips.npz").exists():
        raise StripError(f"{out}: already holds strips.npz; choose a new folder")
    strips, digits = make_strips(count, half, seed)
    save_strips(out / "strips.npz", strips, digits, half)
    try:
        for i in range(min(examples, count)):
            write_png(out / f"example_{i}_{''.join(map(str, digits[i]))}.png", strips[i])
    except StripError:                # no Pillow: the strips file is written, the example images are not
        pass
    return out / "strips.npz"


def columns(images: np.ndarray) -> np.ndarray:
    """Images (N, HEIGHT, W) -> sequences of columns (N, W, HEIGHT)."""
    return np.ascontiguousarray(images.transpose(0, 2, 1))


def train(cfg: CTCConfig | None, out: str | Path, epochs: int | None = None, steps: int | None = None,
          minutes: float | None = None, resume: bool = False, progress: bool = True) -> tuple[History, CTCConfig]:
    """Train a new run in ``out`` from ``cfg``, or (``resume``) continue the run there with its own settings."""
    out = Path(out)
    meta = open_run(out, resume, _run_meta)
    if meta is not None:
        cfg = CTCConfig(**meta["ctc"])
    strips = StripSet.load(cfg.data)                   # uint8; a batch is made float32 when drawn
    tr, va = holdout(len(strips), cfg.val_fraction, cfg.seed, cfg.data, "strips")
    rng = np.random.default_rng(cfg.seed)
    if meta is not None:
        model = modelfile.layer_from_config(meta[modelfile.HEADER]["architecture"], rng)
    else:
        model = CTCRecognizer(HEIGHT, CLASSES, cfg.hidden, cfg.layers, rng=rng)
    opt = AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    hist = fit(model, Subset(strips, tr), loss=CTCLoss(), optimizer=opt, epochs=budget(epochs, steps, minutes),
               steps=steps, minutes=minutes, batch_size=cfg.batch_size,
               validation_data=Subset(strips, va), metrics=["cer"], clip=1.0, schedule="cosine", warmup=50,
               min_lr_frac=0.05, monitor="val_cer",
               early_stopping=cfg.patience, run_dir=out, resume=resume, seed=cfg.seed, progress=progress,
               meta={"app": FORMAT, "ctc": asdict(cfg)}, unit="strips", distributed=launched())
    return hist, cfg


def _run_meta(path: Path) -> dict[str, Any]:
    return modelfile.app_meta(path, FORMAT, "ctc", "CTC-recogniser")


def load(run: str | Path) -> Any:
    """The best model of a run folder (or a checkpoint file), in eval mode."""
    path = run_file(run)
    _run_meta(path)
    return modelfile.load_model(path)


def recognise(model: Any, images: np.ndarray, widths: np.ndarray, beam: int = 1) -> list[list[int]]:
    """Digits read from images (N, HEIGHT, W) of the given widths: best path (beam 1) or prefix beam search."""
    logp = functional.log_softmax(model.predict(columns(images), batch_size=128, lengths=widths).astype(np.float64))
    if beam <= 1:
        paths = ctc_greedy(logp, blank=0, input_lengths=widths)
    else:
        paths = [r[0][0] for r in ctc_beam_search(logp, beam, blank=0, input_lengths=widths)]
    return [[k - 1 for k in p] for p in paths]


def decode(run: str | Path, data: str | Path, beam: int = 1) -> dict[str, Any]:
    """Character error rate and the readings on a strips file; with examples."""
    model = load(run)
    images, widths, digits = load_strips(data)
    read = recognise(model, images, widths, beam)
    return {"cer": character_error_rate(read, digits), "strips": len(images),
            "exact": float(np.mean([r == d for r, d in zip(read, digits)])),
            "examples": [(images[i, :, :widths[i]], digits[i], read[i]) for i in range(min(3, len(images)))]}


def predict(run: str | Path, files: list[str], beam: int = 1) -> list[tuple[str, str] | StripError]:
    """(file, the digits read) for each image file (any image Pillow reads, or .npy), scaled to HEIGHT rows;
    a file that cannot be read gets its StripError (which names it) instead, in its place."""
    model = load(run)
    out: list[tuple[str, str] | StripError] = []
    for f in files:
        try:
            img = to_height(read_image(f))              # (a scan of another height is scaled to HEIGHT rows)
        except StripError as e:
            out.append(e)
            continue
        out.append((f, "".join(map(str, recognise(model, img[None], np.array([img.shape[1]]), beam)[0]))))
    return out


def text_art(image: np.ndarray) -> str:
    """A strip as characters, two pixel rows a line."""
    ramp = " .:-=+*#%@"
    rows = image.reshape(HEIGHT // 2, 2, -1).mean(axis=1)
    return "\n".join("".join(ramp[int(v * (len(ramp) - 1) + 0.5)] for v in row) for row in rows)
