"""`manage.py study_report --from-csv`: results from other platforms analysed the same way."""

import json

import pytest
from django.core.management import CommandError, call_command

from evaluation.stats import fmt_p


def votes_csv(path, rows=None):
    lines = ["reader,case,arm_a,arm_b,choice,left,confidence,time_ms"]
    if rows is None:
        rows = []
        for r in range(3):
            for c in range(20):
                choice = "a" if (r + c) % 3 else ("b" if c % 2 else "tie")
                rows.append(f"reader{r},case{c:02d},ai,expert,{choice},{'ab'[c % 2]},{1 + c % 5},{3000 + 100 * c}")
    path.write_text("\n".join(lines + rows) + "\n")
    return path


def test_from_csv_prints_headline_and_exits_zero(tmp_path, capsys):
    call_command("study_report", csv=str(votes_csv(tmp_path / "v.csv")), n_boot=200)
    out = capsys.readouterr().out
    wins = sum(1 for r in range(3) for c in range(20) if (r + c) % 3)
    losses = sum(1 for r in range(3) for c in range(20) if not (r + c) % 3 and c % 2)
    assert f"Arm ai was preferred in {100 * wins / (wins + losses):.2f}% of {wins + losses} decisive" in out
    # The headline carries the primary method's own p-value (here the planned mixed model's Wald test).
    headline = out.split("Headline:")[1].split("==")[0]
    assert "Primary analysis (logistic mixed model" in headline and "; p = " in headline


def test_from_csv_json_and_csv_formats(tmp_path, capsys):
    path = votes_csv(tmp_path / "v.csv")
    call_command("study_report", csv=str(path), format="json", n_boot=100, no_mixed_model=True,
                 primary_method="bootstrap")
    report = json.loads(capsys.readouterr().out)
    assert report["n_votes"] == 60 and report["n_cases"] == 20 and len(report["readers"]) == 3
    assert [(p["arm_a"], p["arm_b"]) for p in report["pairs"]] == [("ai", "expert")]
    assert report["headline"].startswith("Arm ai was preferred")
    assert report["plan"]["method"] == "bootstrap" and report["pairs"][0]["primary"]["method"] == "bootstrap"
    assert fmt_p(report["pairs"][0]["primary"]["p_value"]) in report["headline"]
    call_command("study_report", csv=str(path), format="csv", n_boot=0, no_mixed_model=True,
                 primary_method="bootstrap")
    header = capsys.readouterr().out.splitlines()[0]
    assert "arm_a" in header and "arm_b" in header


@pytest.mark.parametrize("rows,message", [
    (["reader1,case1,ai,expert,maybe,a,3,100"], "line 2"),
    (["reader1,case1,ai,expert,a,a,3,100", "reader1,case1,ai,expert,b,a,3,100"], "line 3"),
])
def test_malformed_csv_names_the_line(tmp_path, rows, message):
    with pytest.raises(CommandError, match=message):
        call_command("study_report", csv=str(votes_csv(tmp_path / "bad.csv", rows)))


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("reader,case,arm_a,choice\nr1,c1,ai,a\n")
    with pytest.raises(CommandError, match="arm_b"):
        call_command("study_report", csv=str(path))


def test_needs_a_study_or_a_csv():
    with pytest.raises(CommandError, match="either a STUDY or --from-csv"):
        call_command("study_report")
