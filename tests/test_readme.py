"""The README's Python and command-line examples run as written."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

from PIL import Image

README = (Path(__file__).parent.parent / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = blocks("python")
    assert code
    for block in code:
        exec(compile(block, "README.md", "exec"), {})


def test_command_line_examples_run(tmp_path, small_photo):
    Image.fromarray(small_photo).save(tmp_path / "photo.png")
    section = README.split("## Command line", 1)[1]
    commands = re.findall(r"```bash\n(.*?)```", section, re.S)[0]
    for line in commands.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        args = shlex.split(line)
        assert args[0] == "vqcodec"
        result = subprocess.run([sys.executable, "-m", "vqcodec", *args[1:]], cwd=tmp_path, capture_output=True)
        assert result.returncode == 0, f"{line}\n{result.stderr.decode(errors='replace')}"
