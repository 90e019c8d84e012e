"""Framework-free building blocks (torch only): embeddings, attention, transformer / HSTU / FuXi blocks."""
