"""A real one-machine SLURM cluster for the tests: munged, slurmctld and slurmd of Debian's
slurm-wlm, started in the foreground as child processes (so their PIDs are known without pid
files), with every file — munge key and socket, slurm.conf, cgroup.conf, state, spool, logs —
under one fresh directory written here. Nothing from /etc/slurm or an earlier run is read.

Recipe: ../shared/notes/slurm-local.md (start munged, slurmctld, slurmd; wait for `idle`;
stop: cancel every job, wait until the queue is empty, `scontrol shutdown`, wait for the PIDs,
then kill munged). A watchdog process in its own session runs the same stop if the test
process dies without stopping the cluster (e.g. killed by CTest's timeout).

NetnsCluster (below) is the same with slurmctld and three slurmd nodes, each in its own
network namespace (../shared/notes/slurm-multinode.md), for the multi-node and fault tests.

Needs root (slurmd runs jobs as their submitting user and manages cgroups). Run as a script
to stop a cluster left behind (either kind): `/usr/bin/python3 tests/slurm/cluster.py --stop DIR`.
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
        deadline = time.time() + timeout
        self._start_munged(deadline)
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

    def _start_munged(self, deadline):
        """munged in the foreground as user munge, on this cluster's key and socket; returns
        once a credential it made decodes."""
        r = self.root
        self._spawn("munged", ["/usr/sbin/munged", "--foreground", f"--socket={self.munge_socket}",
                               f"--key-file={r / 'munge-key' / 'munge.key'}",
                               f"--pid-file={r / 'munge-run' / 'munged.pid'}",
                               f"--log-file={r / 'munge-run' / 'munged.log'}",
                               f"--seed-file={r / 'munge-key' / 'munged.seed'}"],
                    user="munge", group="munge", extra_groups=[])
        while not self.munge_socket.exists():
            if self._procs["munged"].poll() is not None or time.time() > deadline:
                self._fail("munged did not start")
            time.sleep(0.02)
        cred = subprocess.run(["munge", "-S", str(self.munge_socket), "-n"], capture_output=True)
        check = subprocess.run(["unmunge", "-S", str(self.munge_socket)], input=cred.stdout,
                               capture_output=True)
        if cred.returncode or check.returncode:
            self._fail(f"munge/unmunge failed: {cred.stderr!r} {check.stderr!r}")

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


# ---- three nodes, each in its own network namespace --------------------------------------------
# Recipe: ../shared/notes/slurm-multinode.md. slurmctld in namespace <tag>-ctl (address
# 10.77.0.1 on a bridge), node1..node3 in <tag>-n1..n3 (10.77.0.11..13), each slurmd with its own
# hostname (UTS namespace) and a private /tmp (a bind mount in its own mount namespace: pmix
# needs a /tmp per node). The bridge and the veth pairs are made inside the namespaces, so no
# interface, address or route ever appears in the machine's own network; there is no route
# out. The file system is shared (like NFS on a real cluster): the cluster's directory must not
# be under /tmp. <tag> is NETNS_PREFIX + the test process's PID, so a set left by a crashed
# run is recognised (its PID is gone) and removed by the next start.
NETNS_PREFIX = "rs3-"
NETNS_DIR = Path("/run/netns")
SUBNET = "10.77.0"


def netns_pids(ns):
    """The PIDs of every process in network namespace `ns` (`ip netns pids`)."""
    p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()]


def kill_netns_processes(names, timeout=20):
    """SIGKILL every process in the network namespaces `names`, by PID, until none is left (a
    stopped process dies too); the namespaces stay. Returns the PIDs killed."""
    killed = set()
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = [p for ns in names for p in netns_pids(ns) if _alive(p)]
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
                killed.add(p)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return sorted(killed)


def kill_netns(names, timeout=20):
    """kill_netns_processes, then delete the namespaces."""
    killed = kill_netns_processes(names, timeout)
    for ns in names:
        if (NETNS_DIR / ns).exists():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return killed


def stop_netns_cluster(root, pids, namespaces):
    """Stop a NetnsCluster by PID: every process in its namespaces (slurmctld, the slurmd, the
    steps and ranks), the namespaces, then munged."""
    kill_netns(namespaces)
    munged = pids.get("munged")
    if munged and _alive(munged):
        os.kill(munged, signal.SIGTERM)
        if not _wait_gone([munged], 10):
            os.kill(munged, signal.SIGKILL)


def clean_stale_netns(log=print):
    """Remove the namespaces (and stop the munged) of an earlier run whose test process is
    gone; returns the namespaces removed."""
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    stale = {}
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(NETNS_PREFIX):
            continue
        owner = name[len(NETNS_PREFIX):].split("-")[0]
        if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
            stale.setdefault(int(owner), []).append(name)
    for owner, names in stale.items():
        log(f"removing namespaces {' '.join(names)} left by process {owner}")
        kill_netns(names)
    # The munged of such a run (in the machine's namespace): its directory says which.
    for f in Path(NetnsCluster.PARENT).glob("repsweep-slurm3-*/netns.json"):
        try:
            info = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if _alive(info["owner"]):
            continue
        try:
            m = json.loads((f.parent / "pids.json").read_text()).get("munged")
            comm = Path(f"/proc/{m}/comm").read_text().strip() if m else ""
        except (OSError, ValueError):
            m, comm = None, ""
        if comm == "munged":
            log(f"stopping munged {m} left by process {info['owner']}")
            stop_netns_cluster(f.parent, {"munged": m}, [])
        f.unlink()
    return [n for names in stale.values() for n in names]


class NetnsCluster(Cluster):
    """slurmctld and `nodes` slurmd nodes (node1..), each in its own network namespace; the
    Cluster's munged, configuration and client helpers, with every client command run inside
    the controller's namespace (`run`, `client`). Faults: `kill_node`, `stop_node`/`cont_node`
    (SIGSTOP/SIGCONT), `partition`, and `start_node` to bring a node back (a reboot: fresh
    /tmp). `stop()` kills every process of every namespace by PID and deletes them."""

    PARENT = "/var/tmp"        # where the cluster's directory goes (not /tmp: see above)
    SLURMD_TIMEOUT = 20        # a silent node is marked down after ~20 s (default 300)
    GRACE_TIME = 10            # s between a preempted job's SIGTERM and its SIGKILL

    def __init__(self, root, nodes=3, cpus=2):
        super().__init__(root, node="node1", cpus=cpus)
        if Path(self.root).resolve().is_relative_to("/tmp"):
            raise ValueError(f"{root}: the nodes' private /tmp would hide it; use {self.PARENT}")
        self.tag = f"{NETNS_PREFIX}{os.getpid()}"
        self.ctl_ns = f"{self.tag}-ctl"
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]
        self.node_ns = {n: f"{self.tag}-n{i}" for i, n in enumerate(self.nodes, 1)}
        self.addr = {n: f"{SUBNET}.{10 + i}" for i, n in enumerate(self.nodes, 1)}
        self.link = {n: f"v{i}" for i, n in enumerate(self.nodes, 1)}   # in the ctl namespace
        self.namespaces = [self.ctl_ns, *self.node_ns.values()]
        self.client_prefix = ["nsenter", f"--net={NETNS_DIR / self.ctl_ns}"]

    # ---- network ------------------------------------------------------------------------
    def _ip(self, *args):
        p = subprocess.run(["ip", *args], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")

    def _make_network(self):
        c = self.ctl_ns
        for ns in self.namespaces:
            self._ip("netns", "add", ns)
        self._ip("-n", c, "link", "add", "br0", "type", "bridge")
        self._ip("-n", c, "link", "set", "br0", "up")
        self._ip("-n", c, "link", "set", "lo", "up")
        self._ip("-n", c, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        for n in self.nodes:
            ns, v = self.node_ns[n], self.link[n]
            self._ip("-n", c, "link", "add", v, "type", "veth", "peer", "name", "e0", "netns", ns)
            self._ip("-n", c, "link", "set", v, "master", "br0")
            self._ip("-n", c, "link", "set", v, "up")
            self._ip("-n", ns, "addr", "add", f"{self.addr[n]}/24", "dev", "e0")
            self._ip("-n", ns, "link", "set", "e0", "up")
            self._ip("-n", ns, "link", "set", "lo", "up")

    # ---- configuration: the one-node file with the multi-node settings ------------------
    def _write_config(self):
        super()._write_config()
        r = self.root
        self.proctrack = "linuxproc"          # cgroup paths would be shared by the nodes
        (r / "etc" / "cgroup.conf").unlink(missing_ok=True)
        override = {
            "SlurmctldHost": f"ctl({SUBNET}.1)",
            "SlurmdSpoolDir": f"{r / 'spool'}/%n",
            "SlurmdPidFile": f"{r}/slurmd-%n.pid",
            "SlurmdLogFile": f"{self.logdir}/slurmd-%n.log",
            "ProctrackType": "proctrack/linuxproc",
            "SlurmdTimeout": str(self.SLURMD_TIMEOUT),
            # Preemption: a job in partition `urgent` preempts jobs of the default partition
            # (requeued, after SIGTERM and GraceTime) or of `cancelled` (cancelled).
            "PreemptType": "preempt/partition_prio",
            "PreemptMode": "REQUEUE",
        }
        lines, seen = [], set()
        for line in self.conf.read_text().splitlines():
            key = line.split("=", 1)[0]
            if key == "NodeName":
                continue
            if key in override:
                line = f"{key}={override[key]}"
                seen.add(key)
            if key == "PartitionName":
                # the one-node file's partitions (debug, and its own `urgent` for its
                # preemption test) are replaced by the three below, written once
                if "PartitionName" in seen:
                    continue
                seen.add("PartitionName")
                lines += [f"{k}={v}" for k, v in override.items() if k not in seen]
                lines += [f"NodeName={n} NodeAddr={self.addr[n]} CPUs={self.cpus} "
                          f"RealMemory=2048 State=UNKNOWN" for n in self.nodes]
                line = ("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP "
                        f"PriorityTier=1 PreemptMode=REQUEUE GraceTime={self.GRACE_TIME}")
                lines += [f"PartitionName=cancelled Nodes=ALL MaxTime=INFINITE State=UP "
                          f"PriorityTier=1 PreemptMode=CANCEL GraceTime={self.GRACE_TIME}",
                          "PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP "
                          "PriorityTier=10 PreemptMode=OFF"]
            lines.append(line)
        self.conf.write_text("\n".join(lines) + "\n")
        for n in self.nodes:
            (r / "nodetmp" / n).mkdir(parents=True, exist_ok=True)
            os.chmod(r / "nodetmp" / n, 0o1777)
        (r / "netns.json").write_text(json.dumps({"owner": os.getpid(),
                                                  "namespaces": self.namespaces}))

    # ---- start / stop ---------------------------------------------------------------------
    def start(self, timeout=60):
        if os.geteuid() != 0:
            raise Unavailable("network namespaces and slurmd need root; "
                              "run the SLURM tests as root")
        ensure_installed()
        for tool in ("ip", "nsenter", "unshare", "mount"):
            if not shutil.which(tool):
                raise Unavailable(f"{tool} not found (iproute2, util-linux, mount)")
        clean_stale_netns(log=lambda m: print(f"slurm3: {m}", file=sys.stderr))
        t0 = time.time()
        try:
            self._make_network()
        except RuntimeError as e:
            kill_netns(self.namespaces)
            raise Unavailable(f"cannot make network namespaces here: {e}") from None
        self._write_config()
        self._start_watchdog()
        deadline = time.time() + timeout
        self._start_munged(deadline)
        self._spawn("slurmctld", [*self.client_prefix, "unshare", "--uts", "sh", "-c",
                                  'hostname ctl && exec "$@"', "sh",
                                  "/usr/sbin/slurmctld", "-D", "-f", str(self.conf)])
        for n in self.nodes:
            self.start_node(n)
        self.wait_nodes("idle", self.nodes, deadline - time.time())
        self.start_seconds = time.time() - t0
        return self

    def start_node(self, node):
        """(Re)start node's slurmd in its namespaces, as after a reboot: a fresh private /tmp,
        and none of the pmix files a killed slurmstepd left in its spool (slurmd removes its
        own stale step sockets, not pmix's directory pmix.J.S and socket stepd.slurm.pmix.J.S:
        with them every later launch of step J.S there fails, "Cannot create directory
        .../pmix.1.0/: File exists", and a requeued job keeps its id and step numbers)."""
        def clear(paths):
            for f in paths:
                shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink(missing_ok=True)
        tmp = self.root / "nodetmp" / node
        clear(tmp.iterdir())
        spool = self.root / "spool" / node
        clear([*spool.glob("pmix.*"), *spool.glob("stepd.slurm.pmix.*")])
        self._spawn(f"slurmd-{node}", [
            "nsenter", f"--net={NETNS_DIR / self.node_ns[node]}",
            "unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" /tmp && hostname "$2" && shift 2 && exec "$@"', "sh",
            str(tmp), node, "/usr/sbin/slurmd", "-D", "-N", node, "-f", str(self.conf)])

    def node_states(self):
        """{node: sinfo state} (e.g. idle, alloc, down*)."""
        p = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False)
        return dict(l.split() for l in p.stdout.splitlines() if len(l.split()) == 2)

    def wait_nodes(self, state, nodes, timeout):
        """Wait until every node in `nodes` is in a state starting with `state`."""
        deadline = time.time() + timeout
        while True:
            for name, p in self._procs.items():
                if name == "slurmctld" and p.poll() is not None:
                    self._fail(f"slurmctld exited with status {p.returncode}")
            states = self.node_states()
            if all(states.get(n, "").startswith(state) for n in nodes):
                return states
            if time.time() > deadline:
                self._fail(f"nodes {nodes} not {state} after {timeout:.0f} s: {states}")
            time.sleep(0.2)

    def stop(self, drain_timeout=None):
        if self._watchdog is not None and self._watchdog.poll() is None:
            self._watchdog.terminate()
            self._watchdog.wait()
        self._watchdog = None
        stop_netns_cluster(self.root, self.pids, self.namespaces)
        for p in self._procs.values():
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.pids = {}
        self._record()
        (self.root / "netns.json").unlink(missing_ok=True)

    # ---- faults ---------------------------------------------------------------------------
    def _signal_node(self, node, sig):
        pids = netns_pids(self.node_ns[node])
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        return pids

    def kill_node(self, node):
        """A node crash: SIGKILL its slurmd, slurmstepd and every task, until none is left."""
        pids = kill_netns_processes([self.node_ns[node]])
        for name, p in self._procs.items():
            if name == f"slurmd-{node}":
                p.wait(timeout=5)
        return pids

    def stop_node(self, node):
        """A hung node: SIGSTOP every process in it."""
        return self._signal_node(node, signal.SIGSTOP)

    def cont_node(self, node):
        return self._signal_node(node, signal.SIGCONT)

    def partition(self, node, cut=True):
        """Cut (or restore) node's link to the bridge: `ip -n <ctl> link set vN down|up`."""
        self._ip("-n", self.ctl_ns, "link", "set", self.link[node], "down" if cut else "up")

    # ---- clients: inside the controller's namespace ---------------------------------------
    def run(self, cmd, check=True, **kw):
        return super().run([*self.client_prefix, *map(str, cmd)], check=check, **kw)


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
        _stop_any(root, pids)


def _stop_any(root, pids):
    """Stop the cluster under root: by namespaces if it has them (netns.json), else one node."""
    netns = root / "netns.json"
    if netns.exists():
        stop_netns_cluster(root, pids, json.loads(netns.read_text())["namespaces"])
        netns.unlink(missing_ok=True)
    else:
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
        _stop_any(root, json.loads((root / "pids.json").read_text()))
    else:
        sys.exit("usage: cluster.py --stop DIR | --watch PID DIR")
