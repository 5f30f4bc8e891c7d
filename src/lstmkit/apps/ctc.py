"""The CTC recogniser: a folder of images or audio with transcripts -> (bi)LSTM over frames -> CTC.

    lstmkit ctc make-strips --out data/strips --count 5000           # or make-digits; or your own folder
    lstmkit ctc train data/strips --out runs/ctc --minutes 15
    lstmkit ctc decode runs/ctc data/strips_test --beam 10 --lm runs/lm
    lstmkit ctc predict runs/ctc line.png recording.flac
    lstmkit ctc listen runs/ctc recording.wav                         # a unidirectional run, chunk by chunk

DATA is ``lstmkit.data.transcribed``'s folder: a transcripts table (file, text, optional split) and its files.
The run stores what reading a file needs — the kind, the image height or audio setting, the alphabet, the
training frames' mean and deviation — so ``decode``, ``predict`` and ``listen`` read new files as training
did. Training is ``model.fit`` on the shared loop with ``lk.CTCLoss`` (targets packed with their lengths), the
character error rate of best-path decoding as the validation metric (best.npz, early stopping), resume,
Ctrl-C and NaN stop; optional SpecAugment-style masks. Class 0 is the blank; alphabet[i] is class i + 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import functional, modelfile
from ..beam import CharLMScorer, PrefixScorer
from ..ctc import CTCLoss
from ..data.dataset import Subset
from ..data.speech import AudioError, SpeechFeatures, read_audio
from ..data.strips import StripError
from ..data.transcribed import KINDS, Transcribed, TranscriptError, read_frames
from ..decoding import character_error_rate, ctc_beam_search, ctc_greedy
from ..distributed import launched
from ..fitting import fit
from ..models import CTCRecognizer
from ..optim import AdamW
from ..runs import RunError, run_file
from ..streaming import Stream
from ..training import History
from .common import budget, open_run
from .ctc_data import make_digits_folder, make_strips_folder

FORMAT = "lstmkit-ctc"


@dataclass
class CTCConfig:
    """Everything a recogniser run is made of; stored in its checkpoints."""

    data: str
    hidden: int = 128
    layers: int = 2
    bidirectional: bool = True
    height: int = 32
    batch_size: int = 32
    lr: float = 3e-3
    val_fraction: float = 0.1
    spec_augment: int = 0
    patience: int | None = None
    seed: int = 0


class SpecAugment:
    """A training set whose batches get ``masks`` frequency masks (each up to 15 % of the features wide) and
    ``masks`` time masks (each up to 10 % of the sequence) set to 0 — the training frames' mean, after
    normalisation (Park et al., 2019, without time warping)."""

    def __init__(self, dataset: Any, masks: int, seed: int) -> None:
        self.dataset, self.masks, self.rng = dataset, int(masks), np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, packed, lengths = self.dataset[index]
        F = x.shape[2]
        for i in range(len(x)):
            for _ in range(self.masks):
                w = int(self.rng.integers(0, max(1, int(0.15 * F)) + 1))
                f0 = int(self.rng.integers(0, F - w + 1))
                x[i, :, f0:f0 + w] = 0.0
                w = int(self.rng.integers(0, max(1, int(0.1 * lengths[i])) + 1))
                t0 = int(self.rng.integers(0, lengths[i] - w + 1))
                x[i, t0:t0 + w] = 0.0
        return x, packed, lengths

    def fingerprint(self) -> str:
        return f"specaugment{self.masks}:{self.dataset.fingerprint()}"


def open_data(cfg: CTCConfig, reading: dict[str, Any] | None = None, training: bool = True,
              progress: bool = True) -> Transcribed:
    """The run's data folder read with the run's settings (``reading``) or, for a new run, the config's."""
    speech = SpeechFeatures(**reading["speech"]) if reading and reading.get("speech") else None
    return Transcribed(cfg.data, alphabet=reading["alphabet"] if reading else None, height=cfg.height,
                       speech=speech, progress=progress, training=training)


def train(cfg: CTCConfig | None, out: str | Path, epochs: int | None = None, steps: int | None = None,
          minutes: float | None = None, resume: bool = False, progress: bool = True) -> tuple[History, CTCConfig]:
    """Train a new run in ``out`` from ``cfg``, or (``resume``) continue the run there with its own settings."""
    out = Path(out)
    meta = open_run(out, resume, _run_meta)
    reading = None
    if meta is not None:
        cfg, reading = CTCConfig(**meta["ctc"]), meta["reading"]
    assert cfg is not None
    if cfg.spec_augment < 0 or cfg.height < 4 or cfg.hidden < 1 or cfg.layers < 1:
        raise RunError(f"ctc: spec_augment >= 0, height >= 4, hidden and layers >= 1 expected, got "
                       f"{cfg.spec_augment}, {cfg.height}, {cfg.hidden}, {cfg.layers}")
    data = open_data(cfg, reading, progress=progress)
    tr, va, _ = data.split(cfg.val_fraction, cfg.seed)
    if reading is None:
        mean, std = data.statistics(tr)
        reading = {"kind": data.kind, "size": data.size, "alphabet": data.alphabet, "height": cfg.height,
                   "speech": data.speech.as_dict() if data.speech else None,
                   "mean": mean.tolist(), "std": std.tolist()}
    data.normalise(reading["mean"], reading["std"])
    rng = np.random.default_rng(cfg.seed)
    if meta is not None:
        model = modelfile.layer_from_config(meta[modelfile.HEADER]["architecture"], rng)
    else:
        model = CTCRecognizer(data.size, len(data.alphabet) + 1, cfg.hidden, cfg.layers,
                              bidirectional=cfg.bidirectional, rng=rng)
    train_set: Any = Subset(data, tr)
    if cfg.spec_augment:
        train_set = SpecAugment(train_set, cfg.spec_augment, cfg.seed)
    opt = AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    hist = fit(model, train_set, loss=CTCLoss(), optimizer=opt, epochs=budget(epochs, steps, minutes),
               steps=steps, minutes=minutes, batch_size=cfg.batch_size,
               validation_data=Subset(data, va), metrics=["cer"], clip=1.0, schedule="cosine", warmup=50,
               min_lr_frac=0.05, monitor="val_cer",
               early_stopping=cfg.patience, run_dir=out, resume=resume, seed=cfg.seed, progress=progress,
               meta={"app": FORMAT, "ctc": asdict(cfg), "reading": reading}, unit="examples",
               distributed=launched())
    return hist, cfg


def _run_meta(path: Path) -> dict[str, Any]:
    meta = modelfile.app_meta(path, FORMAT, "ctc", "CTC-recogniser")
    if "reading" not in meta:
        raise RunError(f"{path}: a recogniser run from an older lstmkit (it does not record how it reads its "
                       "data); train it again")
    return meta


class Recogniser:
    """A trained run, ready to read files: its best model (eval mode) and how it reads a file."""

    def __init__(self, run: str | Path) -> None:
        path = run_file(run)
        meta = _run_meta(path)
        self.model = modelfile.load_model(path)
        self.config, self.reading = CTCConfig(**meta["ctc"]), meta["reading"]
        self.alphabet: str = self.reading["alphabet"]
        self.speech = SpeechFeatures(**self.reading["speech"]) if self.reading.get("speech") else None
        self.mean = np.asarray(self.reading["mean"], np.float32)
        self.std = np.asarray(self.reading["std"], np.float32)

    def frames(self, path: str | Path) -> np.ndarray:
        """One file as the model's input (T, F), normalised; TranscriptError, StripError or AudioError if not."""
        path = Path(path)
        kind = KINDS.get(path.suffix.lower())
        if kind != self.reading["kind"]:
            raise TranscriptError(f"{path}: this run reads {self.reading['kind']} files, not {kind or 'this kind'}")
        x = read_frames(path, kind, self.reading["height"], self.speech)
        if x.shape[1] != self.reading["size"]:
            raise TranscriptError(f"{path}: {x.shape[1]} features a frame; the run reads {self.reading['size']}")
        return self.normalise(x)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Frames (..., F) as the model reads them: float32, less the training frames' mean, over their deviation."""
        return (x.astype(np.float32) - self.mean) / self.std

    def log_probs(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(B, T, C) float64 log-probabilities of normalised frames (B, T, F)."""
        return functional.log_softmax(self.model.predict(x, batch_size=128, lengths=lengths).astype(np.float64))

    def text(self, labels: list[int]) -> str:
        return "".join(self.alphabet[k - 1] for k in labels)

    def read(self, x: np.ndarray, lengths: np.ndarray, beam: int = 1, lm: PrefixScorer | None = None,
             alpha: float = 0.5, beta: float = 1.0) -> list[str]:
        """The transcripts of normalised frames (B, T, F): best path (beam 1) or prefix beam search, with a
        language model's score when ``lm`` is given."""
        logp = self.log_probs(x, lengths)
        if beam <= 1 and lm is None:
            return [self.text(p) for p in ctc_greedy(logp, blank=0, input_lengths=lengths)]
        found = ctc_beam_search(logp, max(beam, 1), blank=0, input_lengths=lengths, lm=lm, alpha=alpha, beta=beta)
        return [self.text(r[0][0]) for r in found]

    def language_model(self, lm: str | Path | None) -> CharLMScorer | None:
        """A ``lstmkit charlm`` run (or its best.npz) as the beam's scorer, or None."""
        if lm is None:
            return None
        from .charlm import load_run
        model, vocab, _, _ = load_run(run_file(lm))
        try:
            return CharLMScorer(model, vocab, self.alphabet)
        except ValueError as e:
            raise RunError(f"{lm}: {e}") from None


def decode(run: str | Path, data: str | Path, beam: int = 1, lm: str | Path | None = None, alpha: float = 0.5,
           beta: float = 1.0, progress: bool = False, split: str | None = None) -> dict[str, Any]:
    """The character error rate and exact reads over a data folder (the rows of ``split``; by default its test
    rows where its split column has some, else all), with a few (file, truth, read) examples."""
    rec = Recogniser(run)
    ds = open_data(CTCConfig(data=str(data), height=rec.reading["height"]), rec.reading, training=False,
                   progress=progress)
    ds.normalise(rec.mean, rec.std)
    idx = np.arange(len(ds))
    if split is None and ds.splits is not None and "test" in ds.splits:
        split = "test"
    if split is not None:
        idx = np.flatnonzero(np.array(ds.splits or ["train"] * len(ds)) == split)
        if not len(idx):
            raise RunError(f"{data}: no {split} rows in its table")
    scorer = rec.language_model(lm)
    read: list[str] = []
    for start in range(0, len(idx), 256):
        x, _, lengths = ds[idx[start:start + 256]]
        read += rec.read(x, lengths, beam, scorer, alpha, beta)
    truth = [ds.texts[i] for i in idx]
    return {"cer": character_error_rate(read, truth), "examples_read": len(idx),
            "exact": float(np.mean([r == t for r, t in zip(read, truth)])),
            "examples": [(str(ds.files[i]), truth[k], read[k]) for k, i in enumerate(idx[:5])]}


def predict(run: str | Path, files: list[str], beam: int = 1, lm: str | Path | None = None, alpha: float = 0.5,
            beta: float = 1.0) -> list[tuple[str, str] | ValueError]:
    """(file, the transcript read) for each file; a file that cannot be read gets its error (which names it)."""
    rec = Recogniser(run)
    scorer = rec.language_model(lm)
    out: list[tuple[str, str] | ValueError] = []
    for f in files:
        try:
            x = rec.frames(f)
        except (TranscriptError, StripError, AudioError) as e:
            out.append(e)
            continue
        out.append((f, rec.read(x[None], np.array([len(x)]), beam, scorer, alpha, beta)[0]))
    return out


def listen(run: str | Path, file: str | Path, chunk_seconds: float = 0.1) -> Iterator[str]:
    """Stream an audio file through a unidirectional run a chunk at a time, as if it were being recorded:
    yields the best-path transcript so far after every chunk (the last equals reading the whole file)."""
    rec = Recogniser(run)
    if rec.reading["kind"] != "audio" or rec.speech is None:
        raise RunError(f"{run}: listen needs a run trained on audio files (this one reads {rec.reading['kind']})")
    if chunk_seconds <= 0:
        raise RunError(f"listen: the chunk must be longer than 0 s, got {chunk_seconds}")
    try:
        stream = Stream(rec.model)
    except ValueError as e:
        raise RunError(f"{run}: {e}; train with --unidirectional to listen") from None
    samples = read_audio(file, rec.speech.rate)
    features = rec.speech.stream()
    step = max(1, int(chunk_seconds * rec.speech.rate))
    labels: list[int] = []
    prev = 0                                           # the last frame's best class (0: blank)
    for start in range(0, len(samples), step):
        frames = features.push(samples[start:start + step])
        if start + step >= len(samples):
            frames = np.concatenate([frames, features.end()])
        if len(frames):
            best = stream(rec.normalise(frames)[None])[0].argmax(axis=-1)
            for k in best.tolist():
                if k != 0 and k != prev:
                    labels.append(k)
                prev = k
        yield rec.text(labels)


def make(out: str | Path, count: int, half: str = "train", seed: int = 0, kind: str = "strips",
         text: str | Path | None = None) -> Path:
    """Write a data folder of ``count`` digit strips (``kind`` "strips") or connected spoken digits ("digits";
    saying the lines of ``text``, a file of digit strings, when given)."""
    if kind == "strips":
        return make_strips_folder(out, count, half, seed)
    return make_digits_folder(out, count, half, seed, text)
