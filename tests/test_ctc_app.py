"""The CTC recogniser: digit strips, PNG in and out, packed targets through model.fit (which must learn), and
the command line, bad input included."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.cli import main
from lstmkit.ctc import pack_targets
from lstmkit.data import strips as st


def test_strips_are_seeded_and_the_halves_share_no_digit_image():
    a, da = st.make_strips(20, "train", seed=3)
    b, db = st.make_strips(20, "train", seed=3)
    assert da == db and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(x.shape[0] == st.HEIGHT and 3 <= len(d) <= 8 and x.dtype == np.float32 for x, d in zip(a, da))
    train, _ = st.digits("train")
    test, _ = st.digits("test")
    assert len(train) + len(test) == 1797
    seen = {x.tobytes() for x in train}
    assert sum(x.tobytes() in seen for x in test) < 5          # (a handful of 8×8 images coincide in the data)


def test_png_round_trip_and_bad_images(tmp_path):
    img = (0.6 * np.random.default_rng(0).random((st.HEIGHT, 37))).astype(np.float32)    # light ink, dark ground
    st.write_png(tmp_path / "s.png", img)
    back = st.read_image(tmp_path / "s.png")
    assert back.shape == img.shape and np.abs(back - img).max() <= 0.5 / 255 + 1e-6
    np.save(tmp_path / "s.npy", img)
    np.testing.assert_array_equal(st.read_image(tmp_path / "s.npy"), img)
    (tmp_path / "t.png").write_text("hello")
    with pytest.raises(st.StripError, match="t.png: not a readable image or .npy array"):
        st.read_image(tmp_path / "t.png")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(st.StripError, match="o.npy: not a readable .npy array of numbers") as e:
        st.read_image(tmp_path / "o.npy")
    assert "pickle" not in str(e.value)
    with pytest.raises(st.StripError, match="nope.png: no such file"):
        st.read_image(tmp_path / "nope.png")


def test_packed_targets_give_the_same_loss():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 9, 5))
    targets, in_lens, t_lens = np.array([[1, 2, 0], [3, 3, 4], [2, 0, 0]]), np.array([9, 7, 5]), np.array([2, 3, 1])
    explicit = lk.CTCLoss(reduction="none")(logits, targets, in_lens, t_lens)
    packed = lk.CTCLoss(reduction="none")(logits, pack_targets(in_lens, targets, t_lens))
    np.testing.assert_array_equal(explicit, packed)


def toy_sequences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each label 1-4 shows as 2-3 columns lighting feature label-1, with empty columns between."""
    rng = np.random.default_rng(seed)
    T = 24
    x = rng.normal(0, 0.1, (n, T, 4)).astype(np.float32)
    targets, t_lens, in_lens = np.zeros((n, 5), np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(n):
        labels, t = rng.integers(1, 5, rng.integers(2, 6)), int(rng.integers(0, 2))
        for k in labels:
            w = int(rng.integers(2, 4))
            x[i, t:t + w, k - 1] += 1.0
            t += w + int(rng.integers(1, 3))
        targets[i, :len(labels)], t_lens[i], in_lens[i] = labels, len(labels), t
    return x, pack_targets(in_lens, targets, t_lens), in_lens


def test_fit_with_ctc_learns_to_read_sequences():
    x, y, lens = toy_sequences(256, 0)
    xv, yv, lv = toy_sequences(64, 1)
    model = lk.models.CTCRecognizer(4, 5, hidden=24, layers=1, rng=np.random.default_rng(0))
    hist = model.fit(x, y, loss="ctc", optimizer=lk.optim.AdamW(model.parameters(), lr=1e-2), epochs=12,
                     batch_size=32, lengths=lens, validation_data=(xv, yv, lv), metrics=["cer"], progress=False)
    cer = hist.history["val_cer"]
    # an untrained model reads nothing (CER 1.0); one that learned the columns reads almost every label
    assert cer[0] > 0.5 and min(cer) < 0.15, cer


def run(args: list[str]) -> int:
    return main(["ctc", *args])


def test_the_command_line_end_to_end_and_bad_input(tmp_path, capsys):
    data = tmp_path / "strips"
    assert run(["make-strips", "--out", str(data), "--count", "40"]) == 0
    assert run(["make-strips", "--out", str(data), "--count", "40"]) == 2
    assert "not empty" in capsys.readouterr().err
    out = tmp_path / "run"
    assert run(["train", str(data), "--out", str(out), "--steps", "4", "--hidden", "8", "--layers", "1",
                "--batch-size", "8", "--height", "20", "--no-progress"]) == 0
    capsys.readouterr()
    assert run(["decode", str(out), str(data), "--beam", "2"]) == 0
    report = capsys.readouterr().out
    assert "character error rate" in report and "truth" in report
    pngs = sorted(data.glob("*.png"))
    assert run(["predict", str(out), str(pngs[0])]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(pngs[0])) and set(line.split(": ")[1]) <= set("0123456789")
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 20, 40), np.float32))
    for args, needle in ((["predict", str(out), str(cube)], "reads image files, not array"),
                         (["predict", str(out), str(tmp_path / "none.png")], "no such file"),
                         (["predict", str(tmp_path / "norun"), str(pngs[0])], "norun"),
                         (["decode", str(out), str(tmp_path / "nostrips")], "nostrips: no such folder"),
                         (["train"], "a data folder"),
                         (["train", "--resume", str(out), "--hidden", "9"], "cannot change"),
                         (["listen", str(out), str(pngs[0])], "trained on audio"),
                         (["decode", str(out), str(data), "--lm", str(out)], "not a character"),
                         (["decode", str(out), str(data), "--beam", "0"], "--beam")):
        assert run(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("lstmkit: error:") and "\n" not in err and needle in err, (args, err)
    assert run(["predict", str(out), str(pngs[0]), str(cube), str(pngs[1])]) == 2    # the good ones are read
    got = capsys.readouterr()
    assert [ln.split(":")[0] for ln in got.out.splitlines()] == [str(pngs[0]), str(pngs[1])]
    assert got.err.count("lstmkit: error:") == 1 and "cube.npy" in got.err


def test_a_users_scans_in_any_format_pillow_reads(tmp_path):
    from PIL import Image
    strip = (0.8 * (np.random.default_rng(1).random((st.HEIGHT, 30)) > 0.7)).astype(np.float32)
    u8 = np.round(strip * 255).astype(np.uint8)
    Image.fromarray(u8.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")             # 16-bit grayscale
    Image.fromarray(u8).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(u8).save(tmp_path / "interlaced.png", interlace=1)
    Image.fromarray(np.stack([u8] * 3, -1)).save(tmp_path / "colour.png")
    Image.fromarray(255 - u8).save(tmp_path / "paper.png")                                  # dark ink on paper
    for name in ("sixteen.png", "palette.png", "interlaced.png", "colour.png", "paper.png"):
        got = st.read_image(tmp_path / name)
        assert got.shape == strip.shape and np.abs(got - strip).max() < 2 / 255, name
    Image.fromarray(u8).save(tmp_path / "scan.jpg", quality=95)
    assert np.abs(st.read_image(tmp_path / "scan.jpg") - strip).mean() < 0.05
    blocky = np.kron(strip[::2, ::2], np.ones((2, 2), np.float32))
    tall = st.to_height(np.kron(blocky, np.ones((2, 2), np.float32)))                          # a 40-px scan
    assert tall.shape == strip.shape and np.abs(tall - blocky).mean() < 0.03
