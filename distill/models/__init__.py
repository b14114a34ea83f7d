"""Torch models the examples distil: a BERT encoder (sentence embeddings) and a llama decoder (causal LM)."""
