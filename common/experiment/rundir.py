"""Run directories: one writer at a time, and never a result lost.

`prepare_run_dir` locks `log_dir/<run name>/` (an flock held for the whole run) and decides how the run
starts: "new", "checkpoint" (resume from the latest checkpoint) or "step 0" (resume of a run that stopped
before its first checkpoint). An existing run is replaced only with `overwrite`, or when it holds no results.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from common import checkpoints
from common.experiment.errors import ConfigError

LOCK_NAME = ".lock"
# What a run writes; a directory holding only these, with no logged row and no checkpoint, holds no results.
RUN_FILES = {"config.json", "history.jsonl", "metrics.csv", "eval.csv", "checkpoints", ".write_test", LOCK_NAME}


class RunLock:
    """An exclusive `flock` on run_dir/.lock, held for the whole run. The OS drops it when the process ends, so
    a lock file left by a run that died never blocks; the file names the holder's pid for the refusal."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd, self.created = None, False

    def acquire(self) -> None:
        while True:
            created = not self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise ConfigError(f"log directory {self.path.parent} is not writable ({e.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ConfigError(f"run directory {self.path.parent} is in use by another run (pid {holder}); "
                                  "wait for it to end or choose another --config.run_name") from None
            try:  # the file may have been removed by its previous holder between our open and our lock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd, self.created = fd, created
                return
            os.close(fd)

    def record_holder(self) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Removes the lock file (while still holding it) and unlocks."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def holds_results(run_dir: Path) -> bool:
    """Whether a rerun would lose anything: a checkpoint, a summary, a logged row, or a file this project does not
    write (a run killed before its first checkpoint holds none and may be started again)."""
    for path in Path(run_dir).iterdir():
        if path.name not in RUN_FILES:
            return True
        if path.suffix == ".csv" and path.is_file() and len(path.read_bytes().splitlines()) > 1:
            return True
    return checkpoints.latest(run_dir) is not None


def start_of(run_dir: Path, config) -> str:
    """How a run begins: "new", "checkpoint" (resume from the latest one) or "step 0" (resume of a run that
    stopped before its first checkpoint: it starts again from its original config.json)."""
    if not config.resume:
        return "new"
    if checkpoints.latest(run_dir) is not None:
        return "checkpoint"
    if (run_dir / "config.json").is_file() and not (run_dir / "summary.json").exists():
        return "step 0"
    raise ConfigError(f"nothing to resume: {run_dir} has no checkpoint")


def prepare_run_dir(run_dir: Path, config) -> tuple[RunLock, str]:
    """Locks the run directory and decides how the run starts (see `start_of`); refuses to touch an existing
    run unless resume or overwrite is set, or it holds no results. A refusal leaves the disk as it was."""
    if config.resume and not run_dir.is_dir():
        raise ConfigError(f"nothing to resume: {run_dir} has no checkpoint")
    made = False
    try:
        run_dir.mkdir(parents=True)  # atomic: of two runs starting together, one makes it
        made = True
    except FileExistsError:
        pass
    except OSError as e:
        raise ConfigError(f"log directory {run_dir} is not writable ({e.strerror})") from None
    lock = RunLock(run_dir)
    try:
        lock.acquire()
        start = start_of(run_dir, config)
        if start == "new" and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
            if holds_results(run_dir) and not config.overwrite:
                raise ConfigError(f"run directory {run_dir} already exists (set --config.resume=True to continue it "
                                  "or --config.overwrite=True to replace it)")
            if run_dir.is_symlink():
                raise ConfigError(f"run directory {run_dir} is a symbolic link (to {os.path.realpath(run_dir)}) and "
                                  "replacing the run would empty the directory it points to: remove the link or "
                                  "choose another --config.run_name")
            for path in run_dir.iterdir():
                if path.name != LOCK_NAME:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        try:
            probe = run_dir / ".write_test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"log directory {run_dir} is not writable ({e.strerror})") from None
        lock.record_holder()
        return lock, start
    except BaseException:
        if lock.created:
            lock.release()
        elif lock.fd is not None:
            os.close(lock.fd)
        if made:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
