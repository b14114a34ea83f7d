"""The native agent flavour: devices without Python run agents/native/agent.sh, which drives a runtime's own
benchmark tool (llama-bench, benchmark_model, onnxruntime_perf_test); the controller parses what the tool
printed into the same AgentResult as the Python agent, with the same statistics (agents/stats.py).

config.py (the profile's [native] section), tools.py (per tool: argv, phase patterns, parser), llama_bench.py /
litert.py / ort_perf.py (output parsers), result.py (native events -> AgentResult), session.py (stage, probe,
run on a device).
"""
