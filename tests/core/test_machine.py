"""Per-machine choices (``precision: auto``), the job clock's estimates and ``doctor``."""

import json
from pathlib import Path

import pytest

from toolkit import machine
from toolkit import timing
from toolkit.timing import JobClock, PartTimes, format_duration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flags, cap, speeds, expected", [
    ({"avx512f", "avx512_bf16"}, "", (200, 430), "bf16-mixed"),          # an EPYC: bf16 2.2x
    ({"avx512f", "amx_bf16", "amx_tile"}, "", (300, 1500), "bf16-mixed"),
    ({"avx512f", "avx512_bf16"}, "", (410, 211), "32-true"),            # a Xeon: flag, yet bf16 0.5x
    ({"avx512f", "avx2"}, "", (90, 1), "32-true"),                      # emulated bf16: ~3x slower
    ({"avx512f", "avx512_bf16"}, "AVX512_CORE", (200, 430), "32-true"),  # oneDNN kept off bf16
    ({"avx512f", "avx512_bf16"}, "avx512_core_bf16", (200, 430), "bf16-mixed"),
])
def test_auto_precision_follows_native_and_measured_bf16(monkeypatch: pytest.MonkeyPatch, flags, cap,
                                                         speeds, expected) -> None:
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(machine, "cpu_matmul_speeds", lambda: speeds)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    precision, why = machine.resolve_precision("auto", "cpu")
    assert precision == expected and why
    assert ("measured" in why) == (speeds == (410, 211))  # the reason says when the timing overruled the flag
    assert machine.resolve_precision("16-mixed", "cpu")[0] == "16-mixed"  # explicit is kept
    assert machine.resolve_trainer({"precision": "auto", "devices": 1}) == {
        "precision": expected, "devices": 1}


def test_clock_scales_the_reference_and_calibrates_on_first_steps() -> None:
    reference = {"gflops": 100.0, "stages": {"a": {"seconds": 100, "steps": 10},
                                             "b": {"seconds": 50, "steps": 50},
                                             "c": {"seconds": 20, "steps": None}}}
    clock = JobClock({"a": 20, "b": 50, "c": None, "d": 5}, reference, gflops=200.0)
    assert clock.scaled_reference("a") == pytest.approx(100.0)  # twice the steps, twice as fast
    assert clock.remaining_after("a") == (pytest.approx(35.0), ["d"])
    line = clock.first_steps("a", seconds_per_step=10.0, steps_left=10)  # 2x the scaled pace
    assert clock.calibration == pytest.approx(2.0)
    assert clock.scaled_reference("b") == pytest.approx(50.0)
    assert "10.00 s/step" in line
    assert f"whole job ~{format_duration(100 + 70)} left" in line and "no estimate for d" in line


def test_doctor_prints_the_choice_and_an_estimate(capsys: pytest.CaptureFixture) -> None:
    from toolkit.cli import main

    assert main(["doctor", str(ROOT / "recipes/moss_full.yaml")]) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and "auto       precision" in out
    assert "estimate   moss_full" in out and "tokenizer" in out


def test_a_run_is_timed_against_the_profile_of_its_own_precision(tmp_path: Path) -> None:
    from toolkit.timing import reference_profile

    assert reference_profile("moss_full", "32-true")["precision"] == "32-true"
    assert reference_profile("moss_full", "bf16-mixed")["precision"] == "bf16-mixed"
    assert reference_profile("moss_full", "16-mixed") is None
    (tmp_path / "timings.json").write_text('{"precision": "32-true", "stages": {"a": {"seconds": 1}}}')
    assert reference_profile("moss_full", "bf16-mixed", tmp_path)["stages"] == {"a": {"seconds": 1}}


def test_the_profile_measured_on_this_kind_of_cpu_is_preferred(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    from toolkit.timing import reference_profile

    monkeypatch.setattr(timing, "PROFILES", tmp_path)
    for label, kind, gflops in (("", "amx", None), (".epyc", "avx512_bf16", 400.0), (".old", None, 90.0)):
        (tmp_path / f"r.bf16-mixed{label}.json").write_text(
            f'{{"cpu_kind": {json.dumps(kind)}, "gflops": {json.dumps(gflops)}, "stages": {{}}}}')
    (tmp_path / "r.bf16-mixedX.json").write_text('{"cpu_kind": "other", "stages": {}}')  # not r's
    assert reference_profile("r", "bf16-mixed", cpu_kind="amx")["cpu_kind"] == "amx"
    assert reference_profile("r", "bf16-mixed", cpu_kind="avx512_bf16")["cpu_kind"] == "avx512_bf16"
    assert reference_profile("r", "bf16-mixed", cpu_kind="other")["gflops"] == 400.0  # one that scales
    assert reference_profile("r", "32-true", cpu_kind="amx") is None


def test_cpu_kind_follows_the_flags_and_the_onednn_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    for flags, kind in (({"amx_bf16", "avx512_bf16"}, "amx"), ({"avx512_bf16"}, "avx512_bf16"),
                        ({"avx2"}, "no-native-bf16")):
        monkeypatch.setattr(machine, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert machine.cpu_kind() == kind
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert machine.cpu_kind() == "no-native-bf16"


def test_a_derived_recipe_is_timed_against_its_base(tmp_path: Path) -> None:
    from toolkit.recipe import recipe_lineage
    from toolkit.timing import reference_profile

    for folder in ("mine", "mid"):
        (tmp_path / folder).mkdir()
    (tmp_path / "mine" / "mine.yaml").write_text("extends: ../mid/mid.yaml\nseed: 1\n")
    base = Path(__file__).resolve().parents[2] / "recipes" / "moss_full.yaml"
    (tmp_path / "mid" / "mid.yaml").write_text(f"extends: {base}\n")
    lineage = recipe_lineage(tmp_path / "mine" / "mine.yaml")
    assert lineage == ["mine", "mid", "moss_full"]
    assert reference_profile(lineage, "bf16-mixed")["recipe"] == "moss_full"
    assert reference_profile(lineage[:2], "bf16-mixed") is None


def test_part_times_add_up_per_part_in_the_order_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter([0.0, 2.0, 2.0, 7.5, 7.5, 8.0])          # perf_counter at each part's start and end
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    parts = PartTimes()
    with parts.part("qa"):
        pass
    with pytest.raises(RuntimeError), parts.part("ladder"):  # a part that fails is still timed
        raise RuntimeError("boom")
    with parts.part("qa"):
        pass
    assert parts.seconds == {"qa": 2.5, "ladder": 5.5}
    assert list(parts.seconds) == ["qa", "ladder"]
