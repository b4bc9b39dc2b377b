"""Every ```python block of the README runs (each in a fresh namespace, in order). A block whose first line is
``# needs: a, b`` (optional libraries of an extra) is skipped when one of them is not installed."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_python_block_runs(i):
    needs = re.match(r"# needs: (.*)\n", BLOCKS[i])
    for name in needs.group(1).split(",") if needs else ():
        pytest.importorskip(name.strip(), reason=f"README block {i} needs {name.strip()} (an optional extra)")
    exec(compile(BLOCKS[i], f"README.md block {i}", "exec"), {"__name__": "__readme__"})
