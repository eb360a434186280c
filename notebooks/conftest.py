"""nbval runs every notebook in smoke mode (tiny data, 1 epoch): the kernels it starts
inherit this environment. MTL_SMOKE=0 in the environment runs them at full size instead."""
import os

os.environ.setdefault("MTL_SMOKE", "1")
