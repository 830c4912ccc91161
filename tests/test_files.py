from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pamlive.errors import AudioInputError
from pamlive.sources.files import expand_inputs, iter_blocks, open_audio, start_time_from_name


def test_expand_inputs_orders_by_time_in_name(tmp_path: Path) -> None:
    names = ["NOPP6_EST_20090328_001500.wav", "x_20090328_000000.flac", "zzz.wav",
             "GSC_2000-05-19_00-15-00.wav"]
    (tmp_path / "sub").mkdir()
    for n in names:
        sf.write(tmp_path / "sub" / n, np.zeros(2000, np.float32), 2000)
    (tmp_path / "sub" / "notes.txt").write_text("not audio")
    got = [p.name for p in expand_inputs([tmp_path])]
    assert got == ["zzz.wav", "GSC_2000-05-19_00-15-00.wav", "x_20090328_000000.flac",
                   "NOPP6_EST_20090328_001500.wav"]
    assert start_time_from_name(Path(names[0])).isoformat() == "2009-03-28T00:15:00+00:00"


def test_archive_file_names_keep_milliseconds() -> None:
    from datetime import UTC, datetime

    from pamlive.utc import file_stamp

    t = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert start_time_from_name(Path(f"raw_{file_stamp(t)}.flac")) == t


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match=r"nope\.wav: no such file"):
        expand_inputs([tmp_path / "nope.wav"])


def test_blocks_round_trip(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (10007, 3)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, 8000, subtype="FLOAT")
    y = np.concatenate(list(iter_blocks(tmp_path / "a.wav", 1000)))
    np.testing.assert_array_equal(x, y)


def test_nan_sample_is_reported_with_its_time(tmp_path: Path) -> None:
    x = np.zeros((8000, 1), np.float32)
    x[6000] = np.nan
    sf.write(tmp_path / "nan.wav", x, 4000, subtype="FLOAT")
    with pytest.raises(AudioInputError, match=r"NaN or Inf sample at 1\.500 s"):
        list(iter_blocks(tmp_path / "nan.wav", 1024))


def test_truncated_file(tmp_path: Path) -> None:
    sf.write(tmp_path / "t.wav", np.zeros(40000, np.float32), 8000, subtype="PCM_16")
    data = (tmp_path / "t.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: len(data) // 2])
    blocks = []
    with pytest.raises(AudioInputError, match=r"t\.wav: truncated: header announces 40000 frames"):
        for b in iter_blocks(tmp_path / "t.wav", 4096):
            blocks.append(b)
    assert 19000 < sum(len(b) for b in blocks) < 20000  # what is there is still delivered


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.write_bytes(b""), "not a readable audio file"),
        (lambda p: p.write_bytes(b"RIFF1234WAVEjunkjunkjunk"), "not a readable audio file"),
        (lambda p: sf.write(p, np.zeros(100, np.float32), 1000), "below the 2000 Hz minimum"),
        (lambda p: sf.write(p, np.zeros((0, 1), np.float32), 8000), "holds no audio"),
    ],
)
def test_bad_files(tmp_path: Path, make, fragment: str) -> None:
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioInputError, match=fragment):
        open_audio(p)
