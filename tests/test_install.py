"""The README's install step, as a newcomer meets it: quiet, and idempotent."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_setup_twice_prints_no_warning_banner():
    outputs = []
    for _ in range(2):
        r = subprocess.run(["bash", str(ROOT / ".ci" / "setup")], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]
        outputs.append(r.stdout + r.stderr)
    for out in outputs:
        lines = [line for line in out.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("installed: torch"), out[-2000:]
        assert "!!" not in out and "warning" not in out.lower()
