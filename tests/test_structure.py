"""tools/check_structure.py: the package's layering holds, and the checker does catch what it claims to."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

TOOL = REPO / "tools" / "check_structure.py"


def check(src) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), "--src", str(src)], capture_output=True, text=True, timeout=60)


def test_the_package_has_no_cycle_upward_import_or_long_function():
    proc = check(REPO / "src" / "audiomnist")
    assert proc.returncode == 0, proc.stdout


def test_a_hidden_cycle_an_upward_import_and_a_long_function_are_reported(tmp_path):
    pkg = tmp_path / "audiomnist"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "audio.py").write_text("from .errors import X\n\ndef f():\n    from . import train\n")
    (pkg / "errors.py").write_text("X = 1\n")
    (pkg / "train.py").write_text("from .audio import f\n\n\ndef long():\n" + "    x = 1\n" * 90)
    (pkg / "newstage.py").write_text("")
    proc = check(pkg)
    assert proc.returncode == 1
    out = proc.stdout
    assert "function-level import of audiomnist.train" in out
    assert "import cycle: audiomnist.audio <-> audiomnist.train" in out
    assert "audiomnist.audio imports audiomnist.train, which comes after it in LAYERS" in out
    assert "long is 91 lines" in out
    assert "audiomnist.newstage is not in LAYERS" in out
