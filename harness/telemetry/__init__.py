"""Field telemetry: the contract apps export (contract.py, README.md), readers for Prometheus, JSONL and
OpenTelemetry JSON, the store, and drift verdicts against the lab and the field's own earlier windows."""
