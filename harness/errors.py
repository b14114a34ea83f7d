"""One error family for users: the CLI prints these as one line and exits with their code.

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, bad config, an unreachable device."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(UserError):
    """A profile, policy or suite file is invalid. The message names the file and the key."""

    def __init__(self, path: object, key: str | None, problem: str, *, hint: str | None = None) -> None:
        where = f"{path}" + (f": key '{key}'" if key else "")
        super().__init__(f"{where}: {problem}", hint=hint)
        self.path = str(path)
        self.key = key


class ArtifactError(UserError):
    """An artifact that cannot be used: missing, truncated, or of no known format."""


class DeviceError(UserError):
    """A device could not be reached or a command on it failed.

    Carries what was run and what came back, as mobly's adb errors do.
    """

    exit_code = 3

    def __init__(
        self,
        device: str,
        message: str,
        *,
        argv: list[str] | None = None,
        exit_code: int | None = None,
        stdout: str = "",
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        detail = f"device '{device}': {message}"
        if argv is not None:
            detail += f"; command {argv!r}"
        if exit_code is not None:
            detail += f" exited {exit_code}"
        tail = (stderr or stdout).strip()
        if tail:
            detail += f"; output: {tail[-500:]}"
        super().__init__(detail, hint=hint)
        self.device = device
        self.argv = argv
        self.returncode = exit_code
        self.stdout = stdout
        self.stderr = stderr


class DeviceLost(DeviceError):
    """The connection to a device dropped while a command was in flight."""


class RunCancelled(DeviceError):
    """The transport was cancelled (SIGINT/SIGTERM): what it had started was stopped, nothing new starts."""


class HostKeyMismatch(DeviceError):
    """A device offered an SSH host key other than the one known_hosts holds: a security error, never a skip.

    Names the expected and offered fingerprints and the known_hosts file and line, and how to fix it after
    verifying the new key on the device itself.
    """

    def __init__(self, device: str, where: str, *, offered: str, expected: str, known_hosts: str,
                 line: int | None) -> None:
        at = f"{known_hosts}:{line}" if line else known_hosts
        super().__init__(
            device,
            f"HOST KEY MISMATCH for {where}: known_hosts ({at}) expects {expected}, the device offered {offered}; "
            "refusing to connect (the device may have been re-imaged, or someone is in between)",
            hint=f"verify the new fingerprint on the device itself (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
                 f"then remove the old entry (ssh-keygen -R '{where}' -f {known_hosts}) and add the new one",
        )
        self.where, self.offered, self.expected = where, offered, expected
        self.known_hosts, self.line = known_hosts, line


# Exit codes of the `edgefarm` command: one definition (README.md "Exit codes" says the same; each is run by
# tests/test_exit_codes.py). Where several apply, a signal wins, then 3 over 1 and 4.
EXIT_OK = 0  # success; the gate passed
EXIT_GATE_FAILED = 1  # the gate said fail or inconclusive, or a cell's run failed (crashed, oom, timeout, error)
EXIT_USAGE = 2  # usage or configuration error: one line naming the file / key / device / command at fault
EXIT_DEVICE = 3  # a device could not be used: unreachable, lost, host key mismatch, a planned cell with no record
EXIT_RUNS_NOT_OK = 4  # `run` finished but some runs were not ok (oom / crashed / timeout / error)
EXIT_INTERNAL = 70  # an internal error (a bug): the traceback is printed (EX_SOFTWARE)
EXIT_SIGINT = 130  # interrupted by SIGINT (Ctrl-C); what finished is in the run directory
EXIT_SIGTERM = 143  # terminated by SIGTERM; what finished is in the run directory
