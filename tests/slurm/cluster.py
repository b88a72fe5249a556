"""A real one-machine SLURM cluster for the tests: munged, slurmctld and slurmd of Debian's
slurm-wlm, started in the foreground as child processes (so their PIDs are known without pid
files), with every file — munge key and socket, slurm.conf, cgroup.conf, state, spool, logs —
under one fresh directory written here. Nothing from /etc/slurm or an earlier run is read.

Recipe: ../shared/notes/slurm-local.md (start munged, slurmctld, slurmd; wait for `idle`;
stop: cancel every job, wait until the queue is empty, `scontrol shutdown`, wait for the PIDs,
then kill munged). A watchdog process in its own session runs the same stop if the test
process dies without stopping the cluster (e.g. killed by CTest's timeout).

Needs root (slurmd runs jobs as their submitting user and manages cgroups). Run as a script
to stop a cluster left behind: `/usr/bin/python3 tests/slurm/cluster.py --stop DIR`.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["slurm-wlm", "munge"]
DAEMONS = ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"]


class Unavailable(Exception):
    """SLURM cannot run on this machine at all (the only reason to skip)."""


def _missing_daemons():
    return [d for d in DAEMONS if not os.access(d, os.X_OK)]


def ensure_installed(log=print):
    """Install slurm-wlm and munge with apt-get if they are missing; raise Unavailable when
    they are missing and cannot be installed."""
    if not _missing_daemons():
        return
    if os.geteuid() != 0:
        raise Unavailable(f"{', '.join(_missing_daemons())} missing and not root to install "
                          f"{' '.join(PACKAGES)}")
    if not shutil.which("apt-get"):
        raise Unavailable(f"{', '.join(_missing_daemons())} missing and no apt-get to install them")
    log(f"installing {' '.join(PACKAGES)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise Unavailable(f"`{' '.join(cmd)}` failed ({p.returncode}): "
                              f"{(p.stderr or p.stdout).strip()[-500:]}")
    if _missing_daemons():
        raise Unavailable(f"still missing after apt-get: {', '.join(_missing_daemons())}")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _wait_gone(pids, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


class Cluster:
    """One cluster under `root`. `start()`, then `env` for every client command (it carries
    SLURM_CONF), then `stop()` (idempotent)."""

    def __init__(self, root, node="rsnode", cpus=4):
        self.root = Path(root)
        self.node = node
        self.cpus = cpus
        self.conf = self.root / "etc" / "slurm.conf"
        self.logdir = self.root / "log"
        self.pids = {}            # name -> pid
        self._procs = {}          # name -> Popen (ours, so they can be reaped)
        self._watchdog = None
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.proctrack = None

    # ---- configuration --------------------------------------------------------------------
    def _write_config(self):
        r = self.root
        for d in ("etc", "log", "state", "spool", "munge-key", "munge-run", "jobs"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r, 0o755)           # munged (user munge) must reach its socket directory
        os.chmod(r / "state", 0o700)
        # munge: a fresh key readable only by munged; the socket directory 0755 (munged
        # refuses a socket directory that others cannot traverse).
        key = r / "munge-key" / "munge.key"
        key.write_bytes(os.urandom(1024))
        import pwd
        m = pwd.getpwnam("munge")
        for p, mode in ((r / "munge-key", 0o700), (key, 0o400), (r / "munge-run", 0o755)):
            os.chown(p, m.pw_uid, m.pw_gid)
            os.chmod(p, mode)
        self.munge_socket = r / "munge-run" / "munge.socket"

        # proctrack/cgroup (cgroup v1 freezer) signals exactly the batch shell and the srun
        # tasks and kills every process of a job; without a freezer hierarchy linuxproc.
        freezer = Path("/sys/fs/cgroup/freezer")
        self.proctrack = "cgroup" if freezer.is_dir() else "linuxproc"
        ctld_port, d_port = _free_port(), _free_port()
        while d_port == ctld_port:
            d_port = _free_port()
        self.conf.write_text(f"""# written by tests/slurm/cluster.py for one test session
ClusterName=repsweeptest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket},cred_expire=10
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={self.logdir / "slurmctld.log"}
SlurmdLogFile={self.logdir / "slurmd.log"}
SlurmdParameters=config_overrides
ProctrackType=proctrack/{self.proctrack}
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
DependencyParameters=kill_invalid_depend
MpiDefault=pmix
ReturnToService=2
EnforcePartLimits=ALL
MailProg=/bin/true
KillWait=5
MinJobAge=3600
JobCompType=jobcomp/filetxt
JobCompLoc={self.logdir / "jobcomp.txt"}
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
NodeName={self.node} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=2048 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
""")
        if self.proctrack == "cgroup":
            (r / "etc" / "cgroup.conf").write_text(
                "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nCgroupAutomount=no\n"
                "ConstrainCores=no\nConstrainRAMSpace=no\nConstrainDevices=no\n")

    def _record(self):
        (self.root / "pids.json").write_text(json.dumps(self.pids))

    def _spawn(self, name, cmd, **kw):
        out = open(self.logdir / f"{name}.stdout", "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=self.env, start_new_session=True, **kw)
        out.close()
        self._procs[name] = p
        self.pids[name] = p.pid
        self._record()
        return p

    def _fail(self, what):
        logs = []
        for f in sorted(self.logdir.glob("*")):
            try:
                logs.append(f"--- {f.name}:\n" + f.read_text()[-2000:])
            except OSError:
                pass
        self.stop()
        raise RuntimeError(f"SLURM test cluster: {what}\n" + "\n".join(logs))

    # ---- start / stop ---------------------------------------------------------------------
    def start(self, timeout=30):
        if os.geteuid() != 0:
            raise Unavailable("slurmd must run as root (it starts jobs as their user); "
                              "run the SLURM tests as root")
        ensure_installed()
        try:
            import pwd
            pwd.getpwnam("munge")
        except KeyError:
            raise Unavailable("no user 'munge' (the munge package creates it)") from None
        t0 = time.time()
        self._write_config()
        self._start_watchdog()
        r = self.root
        self._spawn("munged", ["/usr/sbin/munged", "--foreground", f"--socket={self.munge_socket}",
                               f"--key-file={r / 'munge-key' / 'munge.key'}",
                               f"--pid-file={r / 'munge-run' / 'munged.pid'}",
                               f"--log-file={r / 'munge-run' / 'munged.log'}",
                               f"--seed-file={r / 'munge-key' / 'munged.seed'}"],
                    user="munge", group="munge", extra_groups=[])
        deadline = time.time() + timeout
        while not self.munge_socket.exists():
            if self._procs["munged"].poll() is not None or time.time() > deadline:
                self._fail("munged did not start")
            time.sleep(0.02)
        cred = subprocess.run(["munge", "-S", str(self.munge_socket), "-n"], capture_output=True)
        check = subprocess.run(["unmunge", "-S", str(self.munge_socket)], input=cred.stdout,
                               capture_output=True)
        if cred.returncode or check.returncode:
            self._fail(f"munge/unmunge failed: {cred.stderr!r} {check.stderr!r}")
        self._spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-f", str(self.conf)])
        self._spawn("slurmd", ["/usr/sbin/slurmd", "-D", "-N", self.node, "-f", str(self.conf)])
        while True:
            for name in ("slurmctld", "slurmd"):
                if self._procs[name].poll() is not None:
                    self._fail(f"{name} exited with status {self._procs[name].returncode}")
            p = subprocess.run(["sinfo", "-h", "-n", self.node, "-o", "%t"], capture_output=True,
                               text=True, env=self.env)
            if p.stdout.strip() == "idle":
                break
            if time.time() > deadline:
                self._fail(f"node {self.node} not idle after {timeout} s (sinfo: "
                           f"{p.stdout.strip()!r} {p.stderr.strip()!r})")
            time.sleep(0.1)
        self.start_seconds = time.time() - t0
        return self

    def _start_watchdog(self):
        """A process in its own session that stops the cluster if this process dies first."""
        self._watchdog = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--watch", str(os.getpid()),
             str(self.root)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.logdir / "watchdog.log", "w"), start_new_session=True)

    def stop(self, drain_timeout=60):
        """Cancel every job and wait for the queue to drain, shut slurmctld and slurmd down,
        wait for their PIDs, then stop munged; anything left gets SIGTERM, then SIGKILL.
        Safe to call twice; stops only the PIDs this cluster started."""
        if self._watchdog is not None and self._watchdog.poll() is None:
            self._watchdog.terminate()
            self._watchdog.wait()
        self._watchdog = None
        stop_by_pids(self.root, self.pids, self.env, self.node, drain_timeout)
        for p in self._procs.values():
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.pids = {}
        self._record()

    # ---- client helpers -------------------------------------------------------------------
    def run(self, cmd, check=True, **kw):
        p = subprocess.run(cmd, capture_output=True, text=True, env=kw.pop("env", self.env), **kw)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n"
                               f"{p.stdout}\n{p.stderr}")
        return p

    def job_info(self, job_id):
        """`scontrol show job ID -o` as a dict (an array job gives its first task's line)."""
        p = self.run(["scontrol", "show", "job", str(job_id), "-o"], check=False)
        line = p.stdout.strip().splitlines()[0] if p.stdout.strip() else ""
        info = {}
        for field in line.split(" "):
            k, _, v = field.partition("=")
            if k and k not in info:
                info[k] = v
        return info

    def job_states(self, job_id):
        """The JobState of every task of a job (one for a plain job)."""
        p = self.run(["scontrol", "show", "job", str(job_id), "-o"], check=False)
        states = []
        for line in p.stdout.strip().splitlines():
            for field in line.split(" "):
                if field.startswith("JobState="):
                    states.append(field.split("=", 1)[1])
        return states

    def wait_job(self, job_id, timeout, final=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                                "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                                                "BOOT_FAIL", "DEADLINE")):
        """Wait until every task of the job is in a final state (a requeued job passes
        through PENDING again and is waited for); returns the states."""
        deadline = time.time() + timeout
        while True:
            states = self.job_states(job_id)
            if states and all(s in final for s in states):
                return states
            if time.time() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout} s: {states}")
            time.sleep(1)


def stop_by_pids(root, pids, env, node, drain_timeout=60):
    """The stop sequence for `pids` ({"munged": ..., "slurmctld": ..., "slurmd": ...})."""
    root = Path(root)
    ctld, slurmd, munged = pids.get("slurmctld"), pids.get("slurmd"), pids.get("munged")

    def client(*cmd):
        try:
            return subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=20)
        except (subprocess.TimeoutExpired, OSError):
            return None

    if ctld and _alive(ctld):
        client("scancel", "--user=root")
        deadline = time.time() + drain_timeout
        while time.time() < deadline:
            q = client("squeue", "-h")
            if q is None or q.returncode != 0 or not q.stdout.strip():
                break
            time.sleep(0.5)
        client("scontrol", "shutdown")
    daemons = [p for p in (ctld, slurmd) if p]
    if not _wait_gone(daemons, 20):
        for p in daemons:
            if _alive(p):
                os.kill(p, signal.SIGTERM)
        if not _wait_gone(daemons, 10):
            for p in daemons:
                if _alive(p):
                    os.kill(p, signal.SIGKILL)
    if munged and _alive(munged):
        os.kill(munged, signal.SIGTERM)
        if not _wait_gone([munged], 10):
            os.kill(munged, signal.SIGKILL)
    # The empty cgroup tree proctrack/cgroup leaves (depth first).
    top = Path("/sys/fs/cgroup/freezer") / f"slurm_{node}"
    if top.is_dir():
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
        except OSError:
            pass


def _watch(parent, root):
    root = Path(root)
    while _alive(parent):
        time.sleep(1)
    try:
        pids = json.loads((root / "pids.json").read_text())
    except (OSError, ValueError):
        return
    if pids:
        print(f"test process {parent} gone: stopping the cluster {pids}", file=sys.stderr)
        stop_by_pids(root, pids, dict(os.environ, SLURM_CONF=str(root / "etc" / "slurm.conf")),
                     _node_of(root))


def _node_of(root):
    for line in (Path(root) / "etc" / "slurm.conf").read_text().splitlines():
        if line.startswith("NodeName="):
            return line.split()[0].split("=", 1)[1]
    return "rsnode"


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--watch":
        _watch(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "--stop":
        root = Path(sys.argv[2])
        stop_by_pids(root, json.loads((root / "pids.json").read_text()),
                     dict(os.environ, SLURM_CONF=str(root / "etc" / "slurm.conf")),
                     _node_of(root))
    else:
        sys.exit("usage: cluster.py --stop DIR | --watch PID DIR")
