"""The must-show of the native flavour, by hand: `pytest --device pixel7 --artifact GGUF` against a stock-phone
stand-in - the real adb server, the adbd stand-in whose shell finds no Python (python/python3 are traps that
record any call), device_profiles/pixel7.toml itself with only what a stand-in must change (its serial and adb
port, a work directory in the stand-in's storage, `sh` for /system/bin/sh, pin_cpus on the CPUs this machine
has, no fuel gauge) and this machine's llama-bench in place of the NDK build.

    .venv/bin/python benchmarks/native_phone.py [--gguf samples/student-llama-q8_0.gguf] [--keep DIR]

Prints pytest's own lines, then the wall time of the whole pytest run, the push (bytes, seconds), the phases
on the device and the record's key figures, and whether anything tried to start Python on the "phone".
Exit status: pytest's. (pixel7's budgets are a phone's: on a shared x86 machine the gate may say fail or
inconclusive; the point here is that the run reaches the gate, with no Python, and how long it takes.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from native_helpers import no_python_path  # noqa: E402

from harness.standins import adbd  # noqa: E402


def find_tools() -> Path:
    found = sorted((Path.home() / ".cache" / "edgefarm" / "llama-tools").glob("*-host-*/bin/llama-bench"))
    if not found:
        sys.exit("llama-bench is not built: run ci/build_llama_tools.sh")
    return found[-1].parent


def pixel7_on(dev: adbd.AdbdDevice, srv: adbd.AdbServer, tools: Path, out: Path) -> Path:
    text = (ROOT / "device_profiles" / "pixel7.toml").read_text()
    cpus = sorted(os.sched_getaffinity(0))[-2:]
    for old, new in (('"$EDGEFARM_PIXEL7_SERIAL"', json.dumps(dev.serial)), ("adb_port = 5037", f"adb_port = {srv.port}"),
                     ('"/data/local/tmp/edgefarm"', json.dumps(str(dev.root / "edgefarm"))),
                     ("pin_cpus = [6, 7]", f"pin_cpus = {cpus}"), ('"/system/bin/sh"', '"sh"'),
                     ("~/.cache/edgefarm/llama-tools/android-arm64/bin", str(tools))):
        assert old in text, old
        text = text.replace(old, new)
    text = re.sub(r'\n\[energy\]\nkind = "fuel_gauge"\n?', "\n", text)
    (out / "profiles").mkdir(parents=True, exist_ok=True)
    (out / "profiles" / "pixel7.toml").write_text(text)
    return out / "profiles"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, default=ROOT / "samples" / "student-llama-q8_0.gguf")
    ap.add_argument("--keep", type=Path, help="directory for the stand-in, profiles and run (default: a temporary one)")
    a = ap.parse_args()
    if not a.gguf.exists():
        sys.exit(f"{a.gguf} does not exist: run `edgefarm samples samples` first")
    work = a.keep or Path(tempfile.mkdtemp(prefix="edgefarm-phone-"))
    path, marker = no_python_path(work)
    srv = adbd.AdbServer.start()
    old = os.environ["PATH"]
    os.environ["PATH"] = path  # the stand-in's shell commands inherit it
    try:
        dev = adbd.start(work / "storage")
    finally:
        os.environ["PATH"] = old
    try:
        profiles = pixel7_on(dev, srv, find_tools(), work)
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--edgefarm-profiles",
                            str(profiles), "--device", "pixel7", "--artifact", str(a.gguf), "--edgefarm-out",
                            str(work / "out"), "-v"], cwd=work)
        wall = time.monotonic() - t0
    finally:
        dev.stop()
        srv.stop()
    print(f"\npytest wall time {wall:.1f} s (exit {r.returncode}); work directory {work}")
    for line in (work / "out" / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        prov = rec.get("provenance") or {}
        push = prov.get("push") or {}
        print(f"status {rec['status']}, flavour {rec['device']['fingerprint'].get('agent_flavour')}, "
              f"python on the device: {prov.get('agent_python')}")
        print(f"push: {push.get('bytes_sent')} bytes in {push.get('seconds')} s (skipped: {push.get('skipped')})")
        print("phases: " + ", ".join(f"{p['name']} {p['t_end'] - p['t_start']:.2f} s" for p in rec.get("phases") or []))
        for k in ("prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms", "peak_rss_mib"):
            m = rec["metrics"].get(k) or {}
            print(f"  {k:<22} {m.get('value')} {m.get('unit')}  ci {m.get('ci')}")
    print("something tried to start Python on the phone: " + (marker.read_text().strip() if marker.exists() else "no"))
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
