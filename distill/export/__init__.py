"""Exporters: ONNX (fp32, int8, int4), GGUF (llama students), TFLite (only where a converter is installed).

Each exporter has a verifier that loads the artifact in its runtime and compares with the torch model.
"""
