"""Generated pytest tests for a golden suite (called by harness/pytest_items.py when --golden is given).

Per artifact whose format fits the suite: one test per golden item (`golden::ARTIFACT::ITEM_ID`) and one for
the suite as a whole (`golden::ARTIFACT::suite`: pass rate and unit tier). Outputs are generated on the host
once per artifact (a GGUF in a llama.cpp child process) and the result is written to
OUT/golden/ARTIFACT.json. Under pytest-xdist an artifact's golden tests share one group, so one worker runs it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.errors import UserError
from harness.golden.results import GoldenResult
from harness.golden.suite import Suite, load_suite
from harness.pytest_state import ArtifactEntry, EdgefarmState

_RESULTS: dict[tuple[int, str], GoldenResult | UserError] = {}  # (id(state), artifact path) -> result
FITS = {"text": ("gguf",), "tensor": ("onnx", "tflite")}


def _result(state: EdgefarmState, suite: Suite, artifact: ArtifactEntry) -> GoldenResult:
    key = (id(state), str(artifact.path))
    if key not in _RESULTS:
        from harness.golden.tiers import run_golden

        try:
            res = run_golden(suite, artifact.path)
            out = state.out_dir / "golden" / f"{artifact.path.name}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(res.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
            _RESULTS[key] = res
        except UserError as e:
            _RESULTS[key] = e
    got = _RESULTS[key]
    if isinstance(got, UserError):
        pytest.fail(f"golden run failed: {got}", pytrace=False)
    return got


class GoldenItem(pytest.Item):
    """One golden item on one artifact, or (item_id None) the suite's overall verdict."""

    def __init__(self, *, state: EdgefarmState, suite: Suite, artifact: ArtifactEntry, item_id: str | None,
                 skip: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.state, self.suite, self.artifact, self.item_id, self.skip = state, suite, artifact, item_id, skip
        self.add_marker(pytest.mark.xdist_group(f"golden-{artifact.path.name}"))
        self.add_marker(pytest.mark.edgefarm)

    def runtest(self) -> None:
        if self.skip:
            pytest.skip(self.skip)
        if self.artifact.info is None:
            pytest.fail(f"artifact unusable: {self.artifact.error}", pytrace=False)
        res = _result(self.state, self.suite, self.artifact)
        self.user_properties += [("golden_suite", res.suite_name or res.suite), ("suite_sha256", res.suite_sha256),
                                 ("artifact", self.artifact.path.name), ("artifact_sha256", self.artifact.info.sha256)]
        if self.item_id is None:
            self.user_properties += [("pass_rate", f"{res.pass_rate:.4f}"), ("outcome", res.outcome)]
            if res.outcome != "pass":
                pytest.fail(f"{res.outcome}: {res.reason}", pytrace=False)
            return
        it = next(i for i in res.items if i.id == self.item_id)
        self.user_properties += [("outcome", it.outcome), ("scores", json.dumps(it.scores))]
        if it.outcome != "pass":
            pytest.fail(f"{it.outcome}: {it.reason}", pytrace=False)

    def reportinfo(self) -> tuple[str, int | None, str]:
        where = f"{self.suite.path}:{next((i.line for i in self.suite.items if i.id == self.item_id), 0)}"
        return (str(self.suite.path), None, f"golden {self.item_id or 'suite'} {self.artifact.path.name} ({where})")


def golden_items(parent: pytest.Collector, state: EdgefarmState) -> list[pytest.Item]:
    """The golden tests for every artifact given (a suite that does not load is a usage error)."""
    assert state.golden_path is not None
    try:
        suite = load_suite(state.golden_path)
    except UserError as e:
        raise pytest.UsageError(f"edgefarm: {e}") from None
    group = bool(getattr(parent.config.option, "loadgroup", False))
    items: list[pytest.Item] = []
    for entry in state.artifacts:
        at = f"@golden-{entry.path.name}" if group else ""
        base = f"golden::{entry.path.name}"
        fmt = entry.info.format if entry.info else None
        if fmt is not None and suite.kind in FITS and fmt not in FITS[suite.kind]:
            why = (f"the golden suite {suite.path.name} holds {suite.kind} items, for "
                   f"{' or '.join(FITS[suite.kind])} models; {entry.path.name} is {fmt}: give a suite for it")
            items.append(GoldenItem.from_parent(parent, name=f"{base}::suite{at}", state=state, suite=suite,
                                                artifact=entry, item_id=None, skip=why))
            continue
        items.append(GoldenItem.from_parent(parent, name=f"{base}::suite{at}", state=state, suite=suite,
                                            artifact=entry, item_id=None))
        for it in suite.items:
            items.append(GoldenItem.from_parent(parent, name=f"{base}::{it.id}{at}", state=state, suite=suite,
                                                artifact=entry, item_id=it.id))
    return items
