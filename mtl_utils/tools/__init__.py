"""What serves the notebooks and the repository, not the ideas: the notebooks' setup, figures
and freeze panel, the command line, the main job, publishing.

    notebook.py    setup_notebook(), tables and the exercises' self-check
    plots.py       the figures (imported on first use: mu.plots)
    widgets.py     the freeze panel (imported on first use: mu.widgets)
    cli.py         python -m mtl_utils ...
    runner.py      python -m mtl_utils notebooks: the main job
    publish.py     the repository's name and ref in badges and setup cells
    site.py        python -m mtl_utils site: the website of the executed series
    gpu_check.py   python -m mtl_utils gpu-check: the checks to run on a CUDA machine
"""
