"""A real, private SLURM cluster on localhost for the tests: munged, slurmctld and two slurmd
(nodes ``n1`` and ``n2``, two fake GPUs each) from Debian's slurm-wlm, all under one temporary
folder, on free ports, stopped afterwards. Root only (slurmd runs jobs as their user).

Run by hand: ``python tests/support/slurm_cluster.py DIR`` starts one and prints the
``SLURM_CONF`` to export; Ctrl-C stops it.

Two facts shape it: the slurm executor plugin's job step strips every ``SLURM_*`` variable
(``SLURM_CONF`` too) before its inner ``srun``, so ``bin/srun`` here is a wrapper that puts
``SLURM_CONF`` back; and with accounting off ``sacct`` never answers, so the profile queries
``squeue`` and ``MinJobAge`` keeps finished jobs visible to it.
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

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "srun")
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
        for d in ("etc", "state", "log", "run", "munge", "bin", *(f"spool/{n}" for n in NODES)):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o755)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        ctld_port, *node_ports = _free_ports(1 + len(NODES))
        nodes = "\n".join(
            f"NodeName={n} NodeAddr=127.0.0.1 NodeHostname=localhost Port={p} "
            f"CPUs={CPUS_PER_NODE} RealMemory={MEM_PER_NODE} Gres=gpu:{GPUS_PER_NODE} "
            "State=UNKNOWN"
            for n, p in zip(NODES, node_ports, strict=True)
        )
        self.conf.write_text(
            f"""ClusterName=drawtune-test
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
AccountingStorageType=accounting_storage/none
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
        self._spawn(_which("slurmctld"), "-D", "-i", "-f", str(self.conf))
        self._wait(lambda: "UP" in self.run("scontrol", "ping", check=False), timeout, "slurmctld")
        for n in NODES:
            self._spawn(_which("slurmd"), "-D", "-N", n, "-f", str(self.conf))
        self._wait(self._nodes_idle, timeout, "slurmd")
        return self

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
