import csv

from helpers.rows import result_row

from bench.results import COLUMNS, ResultWriter, read_rows


def test_writer_appends_header_once_and_rows_round_trip(tmp_path):
    path = tmp_path / "results.csv"
    with ResultWriter(path) as w:
        w.write([result_row(), result_row(trial=2, value=0.5)])
    with ResultWriter(path) as w:  # a second writer appends, no second header
        w.write([result_row(trial=3, detail="multi\nline, with comma")])
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert sum(1 for ln in lines if ln.startswith("run_id")) == 1
    good, bad = read_rows(path)
    assert bad == []
    assert [r["trial"] for r in good] == ["1", "2", "3"]
    assert good[1]["value"] == "0.5"
    assert good[2]["detail"] == "multi line, with comma"


def test_failed_trial_has_empty_value(tmp_path):
    path = tmp_path / "results.csv"
    with ResultWriter(path) as w:
        w.write(
            [result_row(metric="trial", value=None, unit="", status="timeout", detail="no READY")]
        )
    [r] = list(csv.DictReader(path.open()))
    assert r["value"] == "" and r["status"] == "timeout"


def test_reader_names_bad_lines_and_keeps_good_ones(tmp_path):
    path = tmp_path / "results.csv"
    with ResultWriter(path) as w:
        w.write([result_row()])
    with path.open("a") as f:
        f.write("garbage,line\n")
        f.write(",".join(result_row(value=1.0).as_csv()).replace(",1.0,", ",abc,") + "\n")
        f.write(",".join(result_row(status="weird").as_csv()) + "\n")
    with ResultWriter(path) as w:
        w.write([result_row(trial=9)])
    good, bad = read_rows(path)
    assert [r["trial"] for r in good] == ["1", "9"]
    assert [b.line for b in bad] == [3, 4, 5]
    assert "expected 16 fields" in bad[0].reason
    assert "not a number" in bad[1].reason
    assert "status 'weird'" in bad[2].reason
    assert str(bad[0]).startswith(f"{path}:3: skipped:")


def test_reader_rejects_foreign_header(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n")
    good, bad = read_rows(path)
    assert good == [] and "header" in bad[0].reason
