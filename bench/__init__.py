"""pytp's benchmarks: ``python -m bench`` (see ``__main__`` and docs/performance.md).

Separate from the tests: no pytest, no ``tests`` import; pytp is driven
through its installed command, so the suite runs after a plain install.
One module per benchmark, each comparing pytp with a reference tool in the
same run.  ``virtual_drive_throughput.py`` times the virtual drive alone.
"""
