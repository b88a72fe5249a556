"""tests/bench/bench_epoch.py's FMA floor counts the multiply-adds of an epoch from an exported
weights file; here that count is checked against the same count written from the architecture
table (jobs/architectures.cfg) and net.h's shapes, for a dense and the convolutional net."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench_epoch():
    spec = importlib.util.spec_from_file_location("bench_epoch_under_test",
                                                  REPO / "tests" / "bench" / "bench_epoch.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def fmas_from_table(a):
    """Per map: 2 FMAs per weight use for the forward pass, 2 for the weight gradient and 2
    for the input gradient (none for the first map); a convolution uses each weight at every
    output position."""
    L, U = int(a["hidden_layers"]), int(a["units"])
    if int(a.get("conv_channels", 0)) == 0:
        return 4 * U + 6 * (L - 1) * U * U + 6 * U
    C, K = int(a["conv_channels"]), int(a["conv_kernel"])
    total, length = 4 * U, U
    for c_in, c_out in [(1, C)] + [(C, C)] * (L - 1) + [(C, 1)]:
        length -= K - 1
        total += 6 * c_out * c_in * K * length
    return total + 6 * length  # the final dense map


@pytest.mark.parametrize("arch", ["shallow", "narrow", "convolution"])
def test_epoch_fmas_matches_the_architecture_table(arch, run_repsweep, architectures, tmp_path):
    bench_epoch = _bench_epoch()
    wpath = tmp_path / "w.nc"
    run_repsweep("trial", "--arch", arch, "--epochs", "1", "--no-fit",
                 "--export-weights", str(wpath))
    _, params = bench_epoch.oracle.load_weights(wpath)
    assert bench_epoch.epoch_fmas(params) == fmas_from_table(architectures[arch])
