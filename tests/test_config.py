from pathlib import Path

import pytest

from pamlive.config import load_config
from pamlive.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["narw.toml", "demo.toml"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(REPO / "configs" / name)
    assert cfg.model.path == "builtin:narw"
    assert cfg.alerts.publish.startswith("tcp://127.0.0.1:")


def test_demo_config_is_a_simulated_array() -> None:
    cfg = load_config(REPO / "configs" / "demo.toml")
    assert cfg.source.kind == "simulator"
    assert len(cfg.simulator.geometry) == cfg.simulator.channels == 4


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[model]\nhop = 1\n", "[model] hop"),
        ("[modle]\npath = 'x'\n", "unknown setting 'modle'"),
        ("[model]\nhop_s = 'fast'\n", "[model] hop_s must be"),
        ("[model]\nhop_s = -1\n", "[model] hop_s must be positive"),
        ("[source]\nkind = 'radio'\n", "[source] kind"),
        ("[source]\nsamplerate = 1000\n", "2000..384000"),
        ("[source]\nkind = 'replay'\n", "needs files"),
        ("[model]\nthresholds = { right_whale = 1.5 }\n", "thresholds.right_whale"),
        ("[alerts]\npublish = '127.0.0.1:5556'\n", "ZeroMQ endpoint"),
        ("[source]\nchannels = true\n", "[source] channels must be int"),
        ("station = \n", "invalid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_overrides_and_relative_paths(tmp_path: Path) -> None:
    p = write(tmp_path, "data_dir = 'data'\n[source]\nkind = 'replay'\nfiles = ['a.wav']\n")
    cfg = load_config(p, {"source.channels": 4, "alerts.publish": "tcp://127.0.0.1:6000",
                          "station": "ship"})
    assert cfg.source.channels == 4
    assert cfg.alerts.publish == "tcp://127.0.0.1:6000"
    assert cfg.station == "ship"
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.source.files == [tmp_path / "a.wav"]
    assert cfg.alerts.log == Path("detections.sqlite")  # stays relative to data_dir


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # NaN and infinities are refused wherever a number is read (issue 13, fault 3)
        ("[model]\nhop_s = nan\n", "[model] hop_s must be a finite number, got nan"),
        ("[model]\nhop_s = inf\n", "[model] hop_s must be a finite number, got inf"),
        ("[model]\nthresholds = { right_whale = nan }\n", "right_whale must be a finite"),
        ("[buffers]\nring_seconds = -inf\n", "[buffers] ring_seconds must be a finite number"),
        ("[source]\nspeed = nan\n", "[source] speed must be a finite number"),
        ("[simulator]\nsnr_db_range = [0.0, inf]\n", "[simulator] snr_db_range must be a finite"),
        ("[simulator]\ngeometry = [[0, 0], [nan, 1]]\n", "geometry[1] must be a finite"),
        ("[watchdog]\nsilence_s = nan\n", "[watchdog] silence_s must be a finite number"),
        ("[clips]\npre_s = inf\n", "[clips] pre_s must be a finite number"),
        ("[archive]\nmax_gb = nan\n", "[archive] max_gb must be a finite number"),
        ("[position]\nmax_fix_age_s = inf\n", "[position] max_fix_age_s must be a finite number"),
        # values that are numbers but make no sense
        ("[model]\nhop_s = 1e9\n", "[model] hop_s must be at most 600 s, got 1000000000.0"),
        ("[buffers]\nring_seconds = 0.001\n", "[buffers] ring_seconds must be in 0.05..600 s"),
        ("[simulator]\nship_probability = 1.5\n", "[simulator] ship_probability must be in 0..1"),
        ("[simulator]\nchannels = 5\n", "[simulator] geometry lists 4 hydrophones for 5 channels"),
        ("[position]\nudp_port = 70000\n", "[position] udp_port must be in 1..65535"),
        ("[source]\nlatency = 'lowest'\n", "[source] latency must be low or high or a number"),
        # every table is typed: wrong types and unknown keys in the field tables too
        ("[watchdog]\nsilence_s = '10'\n", "[watchdog] silence_s must be a number, got '10'"),
        ("[clips]\nenabled = 1\n", "[clips] enabled must be true or false, got 1"),
        ("[archive]\nsegment_minute = 5\n", "unknown setting [archive] segment_minute"),
        ("[position]\nsource = 'ais'\n", "[position] source must be none, udp, serial or gpsd"),
        ("watchdog = 3\n", "[watchdog] must be a table"),
        ("[dashboard]\nchannel = -1\n", "[dashboard] channel must be >= 0"),
    ],
)
def test_bad_numbers_and_field_tables_name_the_problem(tmp_path: Path, text: str,
                                                       fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert fragment in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "c.toml"))
    assert "\n" not in str(err.value)


def test_field_tables_are_typed_sections_of_the_one_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[watchdog]\nsilence_s = 30\n[archive]\nenabled = true\n"
                                      "max_gb = 2\n[clips]\nformat = 'wav'\n"))
    assert cfg.watchdog.silence_s == 30.0 and isinstance(cfg.watchdog.silence_s, float)
    assert cfg.archive.enabled and cfg.archive.max_gb == 2.0
    assert cfg.clips.format == "wav" and cfg.position.source == "none"


def test_sections_check_themselves_however_they_are_made() -> None:
    """One checker: a section built in code or by ``replace`` obeys the same rules as one
    read from a file (the simulator is no longer checked twice with different rules)."""
    from dataclasses import replace

    from pamlive.config import ModelConfig, SimulatorConfig

    with pytest.raises(ConfigError, match=r"\[simulator\] snr_db_range must be \[low, high\]"):
        SimulatorConfig(snr_db_range=(10.0, 0.0))
    with pytest.raises(ConfigError, match=r"\[model\] hop_s must be a finite number"):
        replace(ModelConfig(), hop_s=float("nan"))
    assert SimulatorConfig(channels=2, snr_db_range=[1, 2]).snr_db_range == (1.0, 2.0)


def test_alerts_rules_live_in_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[alerts\] replay needs alerts\.log"):
        load_config(overrides={"alerts.log": None})
    with pytest.raises(ConfigError, match=r"\[alerts\] CURVE needs both"):
        load_config(write(tmp_path, "[alerts]\ncurve_clients = 'keys'\n"))
    with pytest.raises(ConfigError, match=r"\[alerts\] retention_days must be positive"):
        load_config(write(tmp_path, "[alerts]\nretention_days = 0\n"))
    cfg = load_config(write(tmp_path, "[alerts]\ncurve_clients = 'k'\ncurve_server_secret = 's'\n"))
    assert cfg.alerts.curve_clients == tmp_path / "k"  # relative to the config file


def test_core_config_imports_no_field_module() -> None:
    import subprocess
    import sys

    code = ("import sys, pamlive.config; "
            "print(sorted(m for m in sys.modules if m.startswith('pamlive.field')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
