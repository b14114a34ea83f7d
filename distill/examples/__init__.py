"""Runnable examples: sentence-embedding distillation of all-MiniLM-L6-v2, and a llama causal-LM student."""
