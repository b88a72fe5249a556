"""Helpers for the analysis tests (test_analysis_*.py): small job files with an inline
network (4 hidden layers x 16 units, leaky ReLU: a trial trains in milliseconds and fits in
~0.1 s), and running ``python3 -m analysis``."""
import subprocess
import sys
from pathlib import Path

from sweep_util import REPO_ROOT, TARGET_GAP

ARCH = ('{ name = "small"; hidden_layers = 4; units = 16; gain = 1.0; lr = 0.02; '
        'epochs = 400; }')


def block(name, gains, lrs, target_gaps, seeds, epochs=400, input_gaps=(1.0,)):
    fmt = ", ".join
    return (f'  {{ name = "{name}"; architectures = ( {ARCH} );\n'
            f'    gains = [{fmt(repr(float(g)) for g in gains)}]; '
            f'lr = [{fmt(repr(float(x)) for x in lrs)}]; epochs = {epochs};\n'
            f'    input_gaps = [{fmt(repr(float(x)) for x in input_gaps)}]; '
            f'target_gaps = [{fmt(repr(float(x)) for x in target_gaps)}]; '
            f'seeds = [{fmt(str(s) for s in seeds)}]; }}')


def write_job(path, name, blocks, record=""):
    text = (f'name = "{name}";\n' + (f"record = {{ {record} }};\n" if record else "") +
            "blocks = (\n" + ",\n".join(blocks) + "\n);\n")
    Path(path).write_text(text)
    return Path(path)


def analysis_cli(*args, timeout=300):
    """`/usr/bin/python3 -m analysis ARGS` from the repository root (CompletedProcess)."""
    return subprocess.run([sys.executable, "-m", "analysis", *[str(a) for a in args]],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)


REF_GAP = TARGET_GAP  # the authors' target gap sqrt(0.5), at input gap 1
