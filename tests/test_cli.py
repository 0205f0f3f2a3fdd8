import subprocess
import sys
from pathlib import Path

import pytest

from lmrec_hf.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "presets" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: lmrec-hf" in capsys.readouterr().out


def test_presets_table(capsys):
    assert main(["presets", "--vocab-size", "8192", "--n-positions", "256"]) == 0
    out = capsys.readouterr().out
    assert "vocab_size=8,192" in out
    assert "| 125m | 12 | 768 | 12 | 2048 | 0.003 |" in out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "lmrec-hf"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "presets" in result.stdout


def test_unknown_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err
