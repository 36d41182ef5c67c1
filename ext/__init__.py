"""Compiled hot loops (Cython). Built by setup.py; `pip install -e .` compiles them in place."""
