"""Runs a GitHub workflow job's steps here, in order, as a runner would: `run:` steps in bash -eo pipefail with
GITHUB_OUTPUT / GITHUB_PATH / GITHUB_STEP_SUMMARY, the actions we use done locally (checkout is the scratch
repository itself, upload/download-artifact copy folders). Expressions are the small subset our workflows use;
anything else is an error, so a workflow cannot drift past what this test checks.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class StepResult:
    name: str
    rc: int
    output: str


@dataclass
class JobResult:
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return all(s.rc == 0 for s in self.steps)

    def step(self, prefix: str) -> StepResult:
        return next(s for s in self.steps if s.name.startswith(prefix))

    def log(self) -> str:
        return "\n".join(f"--- {s.name} (rc {s.rc})\n{s.output[-3000:]}" for s in self.steps)


class Runner:
    def __init__(self, repo: Path, temp: Path, *, vars: dict[str, str], secrets: dict[str, str],
                 path_prefix: list[str] | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.repo, self.temp = repo, temp
        self.artifacts = temp / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.ctx: dict[str, Any] = {"vars": vars, "secrets": secrets, "inputs": {}, "matrix": {}, "env": {},
                                    "steps": {}, "runner": {"os": "Linux", "temp": str(temp)},
                                    "github": {"event": {"pull_request": {"number": "1"}}}}
        self.path_prefix = path_prefix or []
        self.extra_env = extra_env or {}

    # --- expressions ----------------------------------------------------------------------------------
    def _term(self, t: str) -> Any:
        t = t.strip()
        if t.startswith("'") and t.endswith("'"):
            return t[1:-1]
        if t in ("!cancelled()", "always()", "success()"):
            return True
        if t == "cancelled()":
            return False
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", t):
            raise ValueError(f"expression not supported by the test runner: {t!r}")
        cur: Any = self.ctx
        for part in t.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        return cur

    def expr(self, e: str) -> Any:
        """`a || b || 'c'`: the first truthy term, as GitHub evaluates it."""
        v: Any = None
        for t in e.split("||"):
            v = self._term(t)
            if v:
                return v
        return "" if v is None else v

    def sub(self, text: Any) -> str:
        return _EXPR.sub(lambda m: str(self.expr(m.group(1)) or ""), str(text))

    def cond(self, text: Any) -> bool:
        m = _EXPR.fullmatch(str(text).strip())
        return bool(self.expr(m.group(1) if m else str(text)))

    # --- jobs -----------------------------------------------------------------------------------------
    def run_job(self, wf: dict[str, Any], job_id: str, matrix: dict[str, str] | None = None) -> JobResult:
        job = wf["jobs"][job_id]
        self.ctx["matrix"] = matrix or {}
        self.ctx["steps"] = {}
        env: dict[str, str] = {}
        for k, v in (wf.get("env") or {}).items():
            env[k] = self.sub(v)
        self.ctx["env"] = env
        for k, v in (job.get("env") or {}).items():
            env[k] = self.sub(v)
        files = {n: self.temp / f"{job_id}.{n}" for n in ("output", "path", "summary", "env")}
        for f in files.values():
            f.write_text("")
        result = JobResult()
        failed = False
        for i, step in enumerate(job["steps"]):
            name = str(step.get("name") or step.get("uses") or f"step {i}")
            cond = step.get("if")
            if failed and not (cond and self.cond(cond)):
                continue
            if cond and not self.cond(cond):
                continue
            step_env = {**env, **{k: self.sub(v) for k, v in (step.get("env") or {}).items()}}
            if "uses" in step:
                rc, out = self._action(str(step["uses"]), {k: self.sub(v) for k, v in (step.get("with") or {}).items()})
            else:
                rc, out = self._run(self.sub(step["run"]), step_env, files)
                outputs = dict(line.split("=", 1) for line in files["output"].read_text().splitlines() if "=" in line)
                if "id" in step:
                    self.ctx["steps"][step["id"]] = {"outputs": outputs}
                files["output"].write_text("")
            result.steps.append(StepResult(name, rc, out))
            failed = failed or rc != 0
        result.summary = files["summary"].read_text()
        return result

    def _run(self, script: str, env: dict[str, str], files: dict[str, Path]) -> tuple[int, str]:
        added = [p for p in files["path"].read_text().splitlines() if p]
        full = {"HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "CI": "true",
                "PATH": ":".join([*reversed(added), *self.path_prefix, BASE_PATH]),
                "RUNNER_TEMP": str(self.temp), "GITHUB_WORKSPACE": str(self.repo),
                "GITHUB_OUTPUT": str(files["output"]), "GITHUB_PATH": str(files["path"]),
                "GITHUB_STEP_SUMMARY": str(files["summary"]), "GITHUB_ENV": str(files["env"]),
                "GITHUB_REF_NAME": "main", "GITHUB_REPOSITORY": "acme/students", **self.extra_env, **env}
        script_file = self.temp / "step.sh"
        script_file.write_text(script)
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)], cwd=self.repo,
                           env=full, capture_output=True, text=True, timeout=1200)
        return r.returncode, r.stdout + r.stderr

    def _action(self, uses: str, with_: dict[str, str]) -> tuple[int, str]:
        name = uses.split("@")[0]
        if name == "actions/checkout":  # a fresh checkout: last night's untracked outputs are gone (clean: true)
            r = subprocess.run(["git", "clean", "-ffdxq"], cwd=self.repo, capture_output=True, text=True)
            return r.returncode, "checkout: the scratch repository, cleaned" + r.stderr
        if name in ("actions/setup-python", "actions/cache"):
            return 0, f"{name}: done by the test (this Python, no cache)"
        if name == "actions/upload-artifact":
            src = self.repo / with_["path"]
            if not src.exists():
                if with_.get("if-no-files-found") == "error":
                    return 1, f"upload-artifact: {src} does not exist"
                return 0, "upload-artifact: nothing to upload"
            dst = self.artifacts / with_["name"]
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
            return 0, f"uploaded {src} as {with_['name']}"
        if name == "actions/download-artifact":
            dest = self.repo / with_["path"]
            got = [a for a in sorted(self.artifacts.iterdir()) if fnmatch.fnmatch(a.name, with_["pattern"])]
            for a in got:
                shutil.copytree(a, dest / a.name, dirs_exist_ok=True)
            return 0, f"downloaded {[a.name for a in got]}"
        return 1, f"action {uses} is not known to the test runner"
