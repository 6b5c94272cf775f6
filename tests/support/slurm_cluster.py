"""A real, private SLURM cluster on localhost for the tests: munged, a MariaDB server and
slurmdbd (job accounting, so ``sacct`` answers as on a production cluster), slurmctld and two
slurmd (nodes ``n1`` and ``n2``, two fake GPUs each) from Debian's slurm-wlm, slurmdbd and
mariadb-server, all under one temporary folder, on free ports, stopped afterwards. Root only
(slurmd runs jobs as their user).

Run by hand: ``python tests/support/slurm_cluster.py DIR`` starts one and prints the
``SLURM_CONF`` to export; Ctrl-C stops it.

The slurm executor plugin's job step strips every ``SLURM_*`` variable (``SLURM_CONF`` too)
before its inner ``srun``, so ``bin/srun`` here is a wrapper that puts ``SLURM_CONF`` back.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = (
    "munged",
    "slurmctld",
    "slurmd",
    "slurmdbd",
    "sbatch",
    "squeue",
    "sacct",
    "sacctmgr",
    "scontrol",
    "scancel",
    "srun",
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
)
CLUSTER = "drawtune-test"
DB_USER, DB_PASS = "slurm", "drawtune-test-only"
NODES = ("n1", "n2")
GPUS_PER_NODE = 2
CPUS_PER_NODE = 4
MEM_PER_NODE = 6000


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


@dataclass
class Cluster:
    root: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self, base: dict | None = None) -> dict:
        """Environment for clients: this cluster's config, and the srun wrapper first on PATH."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> str:
        proc = subprocess.run(
            list(cmd), env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        return proc.stdout

    # ------------------------------------------------------------------ start / stop
    def write_config(self) -> None:
        r = self.root
        dirs = ("etc", "state", "log", "run", "munge", "bin", "db", *(f"spool/{n}" for n in NODES))
        for d in dirs:
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o755)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        ctld_port, self.dbd_port, self.db_port, *node_ports = _free_ports(3 + len(NODES))
        nodes = "\n".join(
            f"NodeName={n} NodeAddr=127.0.0.1 NodeHostname=localhost Port={p} "
            f"CPUs={CPUS_PER_NODE} RealMemory={MEM_PER_NODE} Gres=gpu:{GPUS_PER_NODE} "
            "State=UNKNOWN"
            for n, p in zip(NODES, node_ports, strict=True)
        )
        self.conf.write_text(
            f"""ClusterName={CLUSTER}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd-%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={self.dbd_port}
AccountingStoragePass={r}/munge/munge.socket
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
DefMemPerCPU=500
MinJobAge=600
ReturnToService=2
MpiDefault=none
SchedulerType=sched/builtin
KillWait=5
InactiveLimit=0
{nodes}
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        )
        (r / "etc" / "gres.conf").write_text(
            # fake GPUs: device files that exist on every machine, one per GPU
            "".join(
                f"NodeName={n} Name=gpu File={dev}\n"
                for n in NODES
                for dev in ("/dev/null", "/dev/zero")[:GPUS_PER_NODE]
            )
        )
        # slurmdbd finds its file beside slurm.conf (SLURM_CONF); it must be private to its user
        dbd = r / "etc" / "slurmdbd.conf"
        dbd.write_text(
            f"""AuthType=auth/munge
AuthInfo=socket={r}/munge/munge.socket
DbdHost=localhost
DbdPort={self.dbd_port}
SlurmUser=root
LogFile={r}/log/slurmdbd.log
PidFile={r}/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser={DB_USER}
StoragePass={DB_PASS}
StorageLoc=slurm_acct_db
"""
        )
        os.chmod(dbd, 0o600)
        srun = self.bin / "srun"
        srun.write_text(f'#!/bin/sh\nexport SLURM_CONF="{self.conf}"\nexec {_which("srun")} "$@"\n')
        srun.chmod(0o755)

    def _spawn(self, *cmd: str) -> None:
        log = open(self.root / "log" / f"{Path(cmd[0]).name}-{len(self.procs)}.out", "w")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                list(cmd),
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start(self, timeout: float = 60) -> Cluster:
        self.write_config()
        r = self.root
        self._spawn(
            _which("munged"),
            "--foreground",
            "--force",
            f"--socket={r}/munge/munge.socket",
            f"--key-file={r}/munge/munge.key",
            f"--pid-file={r}/run/munged.pid",
            f"--log-file={r}/log/munged.log",
            f"--seed-file={r}/munge/seed",
        )
        self._wait(lambda: (r / "munge" / "munge.socket").exists(), timeout, "munged")
        self._start_accounting(timeout)
        self._spawn(_which("slurmctld"), "-D", "-i", "-f", str(self.conf))
        self._wait(lambda: "UP" in self.run("scontrol", "ping", check=False), timeout, "slurmctld")
        for n in NODES:
            self._spawn(_which("slurmd"), "-D", "-N", n, "-f", str(self.conf))
        self._wait(self._nodes_idle, timeout, "slurmd")
        return self

    def _ok(self, *cmd: str) -> bool:
        return (
            subprocess.run(list(cmd), env=self.env(), capture_output=True, timeout=30).returncode
            == 0
        )

    def _start_accounting(self, timeout: float) -> None:
        """MariaDB (a fresh data folder, TCP on loopback only) with the database user slurmdbd
        needs, then slurmdbd, then this cluster registered in it."""
        r = self.root
        sock = r / "run" / "mariadb.sock"
        subprocess.run(
            [
                _which("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={r}/db",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._spawn(
            _which("mariadbd"),
            "--no-defaults",
            f"--datadir={r}/db",
            f"--socket={sock}",
            f"--port={self.db_port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--user=root",
            f"--pid-file={r}/run/mariadb.pid",
            f"--log-error={r}/log/mariadb.err",
            "--innodb-buffer-pool-size=64M",
        )
        self._wait(sock.exists, timeout, "mariadbd")
        sql = (
            f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASS}'; "
            f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';"
        )
        self._wait(
            lambda: (
                subprocess.run(
                    [_which("mariadb"), "--no-defaults", f"--socket={sock}", "-uroot", "-e", sql],
                    capture_output=True,
                    timeout=30,
                ).returncode
                == 0
            ),
            timeout,
            "the database user",
        )
        self._spawn(_which("slurmdbd"), "-D")
        self._wait(lambda: self._ok("sacctmgr", "-n", "-P", "show", "cluster"), timeout, "slurmdbd")
        self.run("sacctmgr", "-i", "add", "cluster", CLUSTER, timeout=30, check=False)
        self._wait(
            lambda: CLUSTER in self.run("sacctmgr", "-n", "-P", "show", "cluster", check=False),
            timeout,
            "the cluster's registration",
        )

    def _nodes_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False)
        states = dict(line.split() for line in out.splitlines() if line.strip())
        return all(states.get(n, "").startswith(("idle", "mix", "alloc")) for n in NODES)

    def _wait(self, ok, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if ok():
                    return
            except (subprocess.SubprocessError, OSError, ValueError):
                pass
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited ({p.returncode}); see {self.root}/log")
            time.sleep(0.3)
        raise RuntimeError(f"{what} not ready after {timeout} s; see {self.root}/log")

    def stop(self) -> None:
        try:
            self.run("scancel", "--full", "--user", "root", check=False, timeout=10)
        except (subprocess.SubprocessError, OSError):
            pass
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.procs.clear()


def start_cluster(root: Path) -> Cluster:
    cluster = Cluster(Path(root))
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


if __name__ == "__main__":
    # stop the daemons on Ctrl-C and on kill, also when started in the background
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    c = start_cluster(Path(sys.argv[1]).resolve())
    print(f"export SLURM_CONF={c.conf} PATH={c.bin}:$PATH")
    try:
        signal.pause()
    finally:
        c.stop()
