"""Recipes: one function per task, readable top to bottom; the CLI calls these."""
