"""Audio loading: any rate/channels/format in, mono float32 16 kHz out; bad files named in errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording

from speechssl.data.audio import MIN_SAMPLES, AudioError, audio_info, load_audio, load_cut_audio

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_16k_mono_wav_is_read_as_is(tmp_path):
    x = tone(440, 1.0, 16000)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    y = load_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.shape == (16000,)
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fmt, ext, rate", [("WAV", "wav", 8000), ("FLAC", "flac", 44100), ("OGG", "ogg", 22050)])
def test_any_rate_and_channels_become_16k_mono(tmp_path, fmt, ext, rate):
    left, right = tone(300, 1.0, rate), tone(300, 1.0, rate) * 0.5
    stereo = np.stack([left, right], axis=1)  # (S, 2)
    path = tmp_path / f"s.{ext}"
    sf.write(path, stereo, rate, format=fmt)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.shape[0] - 16000) <= 1
    # channel average of a 300 Hz tone at 0.375 amplitude, resampled: compare away from the edges
    ref = 0.75 * tone(300, 1.0, 16000)
    tol = 0.02 if fmt != "OGG" else 0.06  # vorbis is lossy
    np.testing.assert_allclose(y[800:-800], ref[800 : len(y) - 800], atol=tol)


def test_8k_stereo_info_and_segment(tmp_path):
    x = np.stack([tone(200, 2.0, 8000), tone(200, 2.0, 8000)], axis=1)
    sf.write(tmp_path / "s.wav", x, 8000)
    assert audio_info(tmp_path / "s.wav") == (8000, 16000, 2)
    seg = load_audio(tmp_path / "s.wav", offset=0.5, duration=1.0)
    assert seg.shape == (16000,)
    rec = Recording.from_file(tmp_path / "s.wav")
    cut = rec.to_cut().truncate(offset=0.25, duration=0.5)
    assert load_cut_audio(cut).shape == (8000,)


def test_wrong_extension_reads_by_contents(tmp_path):
    x = tone(440, 0.5, 16000)
    sf.write(tmp_path / "really_wav.flac", x, 16000, format="WAV", subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "really_wav.flac"), x)


def test_text_file_named_wav_is_an_error_naming_it(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 10)
    with pytest.raises(AudioError, match=r"notes\.wav: cannot decode audio") as err:
        load_audio(path)
    assert err.value.path == str(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="corrupt.wav"):
        load_audio(path)


def test_truncated_wav_header(tmp_path):
    sf.write(tmp_path / "full.wav", tone(440, 1.0, 16000), 16000)
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "trunc.wav").write_bytes(data[:30])  # header cut in the middle
    with pytest.raises(AudioError, match="trunc.wav"):
        load_audio(tmp_path / "trunc.wav")


def test_zero_length_and_header_only(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"zero\.wav: file is empty \(0 bytes\)"):
        load_audio(tmp_path / "zero.wav")
    sf.write(tmp_path / "nosamples.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=r"nosamples\.wav: no audio samples"):
        load_audio(tmp_path / "nosamples.wav")


def test_too_short_and_not_finite(tmp_path):
    sf.write(tmp_path / "short.wav", tone(440, 0.01, 16000), 16000)
    with pytest.raises(AudioError, match=rf"short\.wav: too short: 160 samples.*at least {MIN_SAMPLES}"):
        load_audio(tmp_path / "short.wav")
    assert load_audio(tmp_path / "short.wav", min_samples=1).shape == (160,)
    x = tone(440, 0.5, 16000)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio contains NaN"):
        load_audio(tmp_path / "nan.wav")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        load_audio(tmp_path / "nowhere.wav")
