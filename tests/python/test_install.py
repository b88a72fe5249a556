"""`cmake --install` into a fresh prefix, then everything from elsewhere: a job file copied
to a directory without an architectures.cfg is checked, run and its results file read with
PREFIX/bin/repsweep (the installed architectures file, found from the binary); the man pages
through MANPATH; the analysis package installed with Debian's pip (offline, no build
isolation) as `repsweep_analysis` with its `repsweep-analysis` console script.

Before this change `cmake --install` installed nothing, the architectures file's source path
was compiled in, a job copied out of jobs/ failed `check`, and there was no pyproject.toml.
The build directory is the one holding $REPSWEEP_BIN (CTest sets it)."""
import os
import shutil
import subprocess
import sys

from pathlib import Path

from conftest import REPO_ROOT

JOB = """name = "installed";
blocks = (
  { name = "one"; architectures = ["narrow"]; gains = [1.05]; lr = [0.005]; epochs = 200;
    input_gaps = [1.0]; target_gaps = [0.7071067811865476]; seeds = [0]; }
);
"""


def sh(*cmd, cwd, env=None, check=True):
    """Run cmd; on failure the assertion shows its output."""
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0 or not check, f"{cmd} exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def test_installed_prefix_works_from_anywhere(repsweep_bin, tmp_path):
    exe_in_build = Path(repsweep_bin)
    build = exe_in_build.parent
    assert (build / "cmake_install.cmake").is_file(), f"{build} is not a CMake build directory"
    prefix, elsewhere = tmp_path / "prefix", tmp_path / "elsewhere"
    elsewhere.mkdir()
    sh("cmake", "--install", build, "--prefix", prefix, cwd=tmp_path)
    exe = prefix / "bin" / "repsweep"
    data = prefix / "share" / "repsweep"
    for f in ["jobs/architectures.cfg", "jobs/quickstart.cfg", "slurm/repsweep.sbatch",
              "slurm/submit"]:
        assert (data / f).is_file(), f"not installed: {data / f}"
    assert os.access(data / "slurm" / "submit", os.X_OK)
    # nothing of the source or build tree in the binary
    blob = exe.read_bytes()
    for tree in (str(REPO_ROOT), str(build)):
        assert tree.encode() not in blob, f"{exe} names {tree}"

    job = elsewhere / "job.cfg"
    job.write_text(JOB)
    assert not (elsewhere / "architectures.cfg").exists()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("REPSWEEP_ARCHITECTURES", None)
    out = sh(exe, "check", job, cwd=elsewhere, env=env)
    assert "is valid" in out.stdout, out.stdout + out.stderr
    sh(exe, "run", job, "--out", "r.nc", cwd=elsewhere, env=env)
    status = sh(exe, "status", "r.nc", "--json", cwd=elsewhere, env=env)
    assert '"done": 1' in status.stdout, status.stdout
    assert sh(exe, "--version", cwd=elsewhere).stdout.startswith("repsweep 0.")
    # the installed submit script finds the installed binary (no REPSWEEP_BIN, not on PATH)
    submit_env = {k: v for k, v in env.items() if k != "REPSWEEP_BIN"}
    submit_env["PATH"] = "/usr/bin:/bin"
    dry = sh(data / "slurm" / "submit", "--dry-run", job, cwd=elsewhere, env=submit_env)
    assert f"REPSWEEP_BIN={prefix.resolve()}/bin/repsweep " in dry.stdout + dry.stderr, dry.stdout
    trial = sh(exe, "trial", "--arch", "narrow", "--epochs", "5", "--no-fit", "--json",
               cwd=elsewhere, env=env)
    assert '"dh2_final"' in trial.stdout

    man_env = dict(env, MANPATH=str(prefix / "share" / "man"), MANPAGER="cat", PAGER="cat")
    for page in ["repsweep", "repsweep-run", "repsweep-trial"]:
        text = sh("man", "-P", "cat", page, cwd=elsewhere, env=man_env).stdout
        assert "--threads" in text or "COMMAND" in text, f"man {page}:\n{text[:400]}"

    # the analysis package: built from a copy (the source tree stays clean), installed offline
    src = tmp_path / "analysis-src"
    shutil.copytree(REPO_ROOT / "analysis", src,
                    ignore=shutil.ignore_patterns("*.png", "*.pdf", "__pycache__", "build"))
    site = tmp_path / "site"
    sh("/usr/bin/python3", "-m", "pip", "install", "--no-build-isolation", "--no-deps",
       "--no-index", "--target", site, src, cwd=tmp_path)
    py_env = dict(env, PYTHONPATH=str(site))
    sh("/usr/bin/python3", "-c", "import repsweep_analysis, sys; "
       "assert repsweep_analysis.__file__.startswith(sys.argv[1])", site,
       cwd=elsewhere, env=py_env)
    summary = sh(site / "bin" / "repsweep-analysis", "summary", "r.nc", cwd=elsewhere,
                 env=py_env)
    assert "narrow" in summary.stdout, summary.stdout
