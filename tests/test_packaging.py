"""vqcodec installs and starts like its peers: `python -m vqcodec`, a light `--help`, typed, licensed,
one version."""
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import vqcodec

PACKAGE = Path(vqcodec.__file__).parent


def test_python_dash_m_runs_the_command_line():
    out = subprocess.run([sys.executable, "-m", "vqcodec", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and vqcodec.__version__ in out.stdout


def test_help_and_the_container_import_no_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nimport vqcodec.bitstream\nfrom vqcodec.cli import main\n"
            "r = CliRunner().invoke(main, ['compress', '--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_one_version_typed_and_licensed():
    assert vqcodec.__version__ == importlib.metadata.version("vqcodec")
    assert (PACKAGE / "py.typed").is_file()
    meta = importlib.metadata.metadata("vqcodec")
    assert meta["License-Expression"] == "MIT"
    assert (PACKAGE.parent / "LICENSE").read_text().startswith("MIT License")


def test_every_option_has_help():
    from vqcodec.cli import main

    def commands(group):
        for command in group.commands.values():
            yield from commands(command) if hasattr(command, "commands") else [command]

    missing = [f"{c.name} {p.name}" for c in commands(main) for p in c.params
               if p.param_type_name == "option" and not p.help]
    assert missing == []


def test_compressing_and_decompressing_need_none_of_the_extras(tmp_path):
    code = ("import sys\n"
            "for name in ('lpips', 'skimage', 'scipy', 'matplotlib', 'torchvision'):\n"
            "    sys.modules[name] = None  # any import of it fails\n"
            "import numpy as np, vqcodec\n"
            "from vqcodec.cli import main\n"
            "image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)\n"
            "data = vqcodec.compress(image, quality=1)\n"
            "assert vqcodec.decompress(data).size == (56, 40)\n"
            "from PIL import Image\n"
            f"Image.fromarray(image).save({str(tmp_path / 'x.png')!r})\n"
            f"main(['compress', {str(tmp_path / 'x.png')!r}, {str(tmp_path / 'x.vqc')!r}, '--quiet'], "
            "standalone_mode=False)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "x.vqc").read_bytes()[:3] == b"VQC"
    r = subprocess.run([sys.executable, "-c", "import sys; sys.modules['skimage'] = None\n"
                        "from vqcodec.cli import main; main(['demo'])"], capture_output=True, text=True)
    assert r.returncode != 0 and "pip install 'vqcodec[bench]'" in r.stderr
