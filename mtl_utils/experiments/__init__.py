"""Experiments built on the core: the scenarios the series compares, the sweep that runs them
over seeds into the results file, the benchmark, and the analyses of what an encoder represents.

    scenarios.py   the scenarios end to end, their one registry, the heads' probe
    sweep.py       arms x seeds through `train` into one results file; noise bands; the README table
    bench.py       epoch time per freezing mode
    analysis.py    nearest-centroid readouts, CKA drift, neighbour overlap, error analysis
    advice.py      the freeze-depth advisor: probes and gradient ratios per layer, its fixed rule
    ddp_demo.py    two processes on a CPU: a block unfrozen after wrapping, the trap and the fix
"""
