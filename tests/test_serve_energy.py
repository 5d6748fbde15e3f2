"""Energy per audio hour: RAPL counters where readable (a powercap tree written here), else the estimate."""
import time

from harness.serve.energy import ESTIMATE, RAPL, RaplSampler, energy_figure, rapl_packages


def _zone(root, name, uj, max_range=None):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(str(uj))
    if max_range is not None:
        (zone / "max_energy_range_uj").write_text(str(max_range))
    return zone


def test_without_a_readable_counter_every_figure_is_an_estimate_from_cpu_time(tmp_path):
    assert rapl_packages(tmp_path) == []
    fig = energy_figure({"first_issue_unix": 1.0, "last_completion_unix": 11.0, "audio_s": 120.0, "cpu_s": 10.0},
                        None, None, 3.0)
    assert fig["source"].startswith(ESTIMATE) and fig["joules"] == 30.0
    assert fig["wh_per_audio_hour"] == 30.0 / 120.0  # J per audio second = Wh per audio hour


def test_rapl_packages_are_integrated_over_the_test_with_the_idle_draw_removed_and_wraps_followed(tmp_path):
    pkg = _zone(tmp_path, "intel-rapl:0", 990_000_000, max_range=1_000_000_000)
    _zone(tmp_path, "intel-rapl:0:0", 5)  # a sub-zone (cores) would count twice
    zones = rapl_packages(tmp_path)
    assert zones == [pkg]
    with RaplSampler(zones) as sampler:
        start = time.time()
        time.sleep(0.6)
        (pkg / "energy_uj").write_text(str(20_000_000))  # wrapped: +30 J
        time.sleep(0.6)
        end = time.time()
    total = sampler.joules_between(start, end)
    assert abs(total - 30.0) < 1e-6
    fig = energy_figure({"first_issue_unix": start, "last_completion_unix": end, "audio_s": 60.0, "cpu_s": 1.0},
                        sampler, 10.0, 3.0)
    assert fig["source"].startswith(RAPL) and "idle 10.0 W" in fig["source"]
    assert abs(fig["joules"] - (30.0 - 10.0 * (end - start))) < 1e-6
