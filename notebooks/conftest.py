"""nbval runs every notebook (and every solution) in smoke mode: tiny data, 1 epoch. The
kernels it starts inherit this environment; MTL_SMOKE=0 runs them at full size instead."""
import os

os.environ.setdefault("MTL_SMOKE", "1")


def pytest_collection_modifyitems(config, items):
    """pytest-randomly shuffles tests, and that is wanted for the unit tests; a notebook's cells,
    though, must run in their order, one notebook after the other. Put them back so (at the
    place where the first of them landed)."""
    cells = [i for i in items if type(i).__name__ == "IPyNbCell"]
    if not cells:
        return
    first = items.index(cells[0])
    rest = [i for i in items if type(i).__name__ != "IPyNbCell"]
    cells.sort(key=lambda c: (str(c.path), c.cell_num))
    items[:] = rest[:first] + cells + rest[first:]
