"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert "torch.Size([8, 64]) torch.Size([8, 3, 32, 32])" in capsys.readouterr().out


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    assert text.index("pip install torch==2.13.0") < text.index("python -m pytest") < text.index("## User guide")
