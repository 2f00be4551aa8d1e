"""What every reading command prints and leaves: the same warnings, once, in the same words,
no numpy warning; output folders that hold what the command just wrote (vmbench's own earlier
files replaced, anyone else's kept), and nothing half-made when a command fails."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from helpers.reports import REAL_RUN

from bench.analysis.dataset import ReportInputError
from bench.cli import main


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed run, its fifth line's status made unknown: one skipped line."""
    folder = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(REAL_RUN.parent, folder)
    lines = (folder / "results.csv").read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace(",ok,", ",bogus,", 1)
    (folder / "results.csv").write_text("".join(lines))
    return folder / "results.csv"


def warning_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("vmbench: warning: ")]


def test_every_reading_command_prints_the_same_warnings_once(
    damaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for command, out in (
            ("report", tmp_path / "report"),
            ("slides", tmp_path / "deck" / "deck.pptx"),
            ("compare", tmp_path / "cmp"),
        ):
            assert main([command, str(damaged), "--out", str(out)]) == 0
            err = capsys.readouterr().err
            assert "Traceback" not in err and "RuntimeWarning" not in err
            printed[command] = warning_lines(err)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    skipped = f"vmbench: warning: {damaged}:5: skipped: status 'bogus' is not one of"
    for command, lines in printed.items():
        assert len(lines) == len(set(lines)), command  # each warning once
        assert [line.startswith(skipped) for line in lines].count(True) == 1, command
    assert printed["slides"] == printed["report"]  # the same charts, the same words
    chart_notes = [w for w in printed["report"] if w.startswith("vmbench: warning: chart ")]
    report_input = [w for w in printed["report"] if w not in chart_notes]
    assert set(report_input) <= set(printed["compare"])


def test_report_replaces_its_own_files_and_keeps_others(
    damaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "ratios_by_host.png").write_bytes(b"an earlier comparison's chart")
    (out / "notes.txt").write_text("the user's own file")
    (out / "mine").mkdir()
    assert main(["report", str(damaged), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert "ratios_by_host.png" not in names  # vmbench's, not written this time: gone
    assert {"notes.txt", "mine", "report.md", "summary.csv", "ready_time.png"} <= names
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary folder left
    assert f"report: {out}" in capsys.readouterr().out


def test_a_failed_report_leaves_nothing(
    damaged: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import bench.render.report as report

    def fail(*_args: object) -> str:
        raise ReportInputError("a section could not be written")

    monkeypatch.setattr(report, "render_markdown", fail)
    assert main(["report", str(damaged), "--out", str(tmp_path / "new" / "report")]) == 2
    assert list(tmp_path.iterdir()) == []  # neither new/ nor a half-written report
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.md").write_text("the earlier report")
    assert main(["report", str(damaged), "--out", str(old)]) == 2
    assert [p.name for p in old.iterdir()] == ["report.md"]
    assert (old / "report.md").read_text() == "the earlier report"
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert "a section could not be written" in capsys.readouterr().err


def test_slides_to_a_folder_fails_and_leaves_nothing(
    damaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["slides", str(damaged), "--out", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no out-charts/ beside it
    assert list(folder.iterdir()) == []
