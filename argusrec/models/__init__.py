"""Model builders: assemble nn/ parts into SASRec, LLaMa-style, HSTU, FuXi-alpha (and later ARGUS)."""
