"""Golden behaviour suites: tiers 1 (unit correctness) and 2 (golden behaviour) of the three-tier gate.

suite.py       the JSONL format and its strict validator        (load_suite, write_suite)
generators.py  outputs from GGUF (llama.cpp child process), ONNX, TFLite or a callable (make_generator)
tiers.py       checks and scores, and the run                   (run_golden, evaluate)
record.py      references from a teacher                        (record_references)
results.py     per-item results, pass rate, stability, JSON/Markdown (GoldenResult)
embedder.py    all-MiniLM-L6-v2 without torch (numpy, or onnxruntime via minilm_onnx.py)
similarity.py  cosine, chrF, ROUGE-L
pytest_items.py  the tests the pytest plugin generates per golden item; attach.py: results into run records
The format is documented in golden/README.md.
"""
