"""Tests for evaluation.votes_csv.read_votes_csv: parsing, value normalisation, line-numbered errors."""

import io

import numpy as np
import pytest

from evaluation.stats import study_report
from evaluation.votes_csv import VotesCsvError, read_votes_csv

GOOD = """reader,case,arm_a,arm_b,choice,left,confidence,time_ms,dice_a,dice_b
r1,c1,ai,expert, A ,a,5,1200,0.8,0.7
r1,c2,ai,expert,TIE,,3,800.5,,
r2,c1,expert,ai,b,B,,1500,0.7,0.8
"""


def test_reads_good_file_from_path_text_and_binary(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(GOOD, encoding="utf-8")
    for source in (path, str(path), io.StringIO(GOOD), io.BytesIO(("\ufeff" + GOOD).encode("utf-8"))):
        df = read_votes_csv(source)
        assert list(df.columns) == [
            "reader",
            "case",
            "arm_a",
            "arm_b",
            "choice",
            "left",
            "confidence",
            "time_ms",
            "dice_a",
            "dice_b",
        ]
        assert list(df["choice"]) == ["a", "tie", "b"]
        assert list(df["left"]) == ["a", None, "b"]
        assert df["confidence"].iloc[0] == 5 and np.isnan(df["confidence"].iloc[2])
        assert list(df["time_ms"]) == [1200, 800.5, 1500]
        assert np.isnan(df["dice_a"].iloc[1]) and df["dice_b"].iloc[2] == 0.8


def test_binary_file_object_is_left_open():
    buf = io.BytesIO(GOOD.encode())
    read_votes_csv(buf)
    assert not buf.closed


def test_required_columns_only_and_header_case_and_extra_columns():
    text = " Reader ,CASE,arm_a,arm_b,Choice,notes\nr1,c1,x,y,a,hello\n"
    df = read_votes_csv(io.StringIO(text))
    assert list(df.columns) == ["reader", "case", "arm_a", "arm_b", "choice"]
    assert df.iloc[0].to_dict() == {"reader": "r1", "case": "c1", "arm_a": "x", "arm_b": "y", "choice": "a"}


def test_feeds_study_report():
    report = study_report(read_votes_csv(io.StringIO(GOOD)), n_boot=50, fit_mixed_model=False)
    p = report.pairs[0]
    # r2 voted "b" on (expert, ai): canonical pair (ai, expert), so that is a vote for ai.
    assert (p.arm_a, p.arm_b, p.preference.wins_a, p.preference.wins_b, p.preference.ties) == (
        "ai",
        "expert",
        2,
        0,
        1,
    )


def error_of(text):
    with pytest.raises(VotesCsvError) as info:
        read_votes_csv(io.StringIO(text))
    return info.value


HEADER = "reader,case,arm_a,arm_b,choice,confidence,time_ms\n"


@pytest.mark.parametrize(
    "body, line, reason",
    [
        ("r1,c1,x,y,a,3,10\nr1,c2,x,y,maybe,3,10\n", 3, "unknown choice 'maybe'"),
        ("r1,c1,x,y,a,3,10\nr1,c1,y,x,b,3,10\n", 3, "already voted on line 2"),
        ("r1,c1,x,y,a,0,10\n", 2, "bad confidence '0'"),
        ("r1,c1,x,y,a,6,10\n", 2, "bad confidence '6'"),
        ("r1,c1,x,y,a,2.5,10\n", 2, "bad confidence '2.5'"),
        ("r1,c1,x,y,a,high,10\n", 2, "confidence 'high' is not a number"),
        ("r1,c1,x,y,a,3,fast\n", 2, "time_ms 'fast' is not a number"),
        ("r1,c1,x,y,a,3,-5\n", 2, "negative"),
        ("r1,,x,y,a,3,10\n", 2, "empty case"),
        ("r1,c1,x,x,a,3,10\n", 2, "both 'x'"),
        ("r1,c1,x,y,a,3,10\n\n\nr2,c1,x,y,nope,3,10\n", 5, "unknown choice"),  # blank lines still counted
        ('r1,c1,"x\ny",z,a,3,10\nr2,c1,x,y,nope,3,10\n', 4, "unknown choice"),  # quoted multi-line field
    ],
)
def test_errors_name_line_and_reason(body, line, reason):
    err = error_of(HEADER + body)
    assert err.line == line and reason in err.reason
    assert f"line {line}:" in str(err)


def test_missing_column_is_reported_on_header_line():
    err = error_of("reader,case,arm_a,choice\nr1,c1,x,a\n")
    assert err.line == 1 and "missing required column(s) arm_b" in str(err)


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("", 1, "empty"),
        ("\n\n", 1, "empty"),
        (HEADER, 2, "no votes"),
        (HEADER + "\n\n", 2, "no votes"),
    ],
)
def test_empty_files(text, line, reason):
    err = error_of(text)
    assert err.line == line and reason in err.reason


def test_bad_left_and_dice_and_encoding(tmp_path):
    head = "reader,case,arm_a,arm_b,choice,left,dice_a\n"
    assert "unknown left 'up'" in str(error_of(head + "r,c,x,y,a,up,0.5\n"))
    assert "outside [0, 1]" in str(error_of(head + "r,c,x,y,a,a,1.5\n"))
    path = tmp_path / "latin1.csv"
    path.write_bytes(head.encode() + "r,c,x,y,a,a,0.5\nr\xe9,c,x,y,a,a,0.5\n".encode("latin-1"))
    with pytest.raises(VotesCsvError, match="not UTF-8"):
        read_votes_csv(path)
    assert "latin1.csv, line" in str(pytest.raises(VotesCsvError, read_votes_csv, path).value)


def test_grade_and_reread_columns(tmp_path):
    from evaluation.stats import AnalysisPlan, study_report
    from evaluation.votes_csv import VotesCsvError, read_votes_csv

    path = tmp_path / "graded.csv"
    path.write_text("reader,case,arm_a,arm_b,choice,grade,reread\n"
                    "r1,c1,ai,expert,a,2,\nr1,c2,ai,expert,b,-1,0\nr1,c1,expert,ai,b,-1,true\n")
    votes = read_votes_csv(path)
    assert list(votes["reread"]) == [False, False, True] and list(votes["grade"]) == [2, -1, -1]
    report = study_report(votes, n_boot=0, fit_mixed_model=False, plan=AnalysisPlan(method="bootstrap"))
    assert report.n_rereads == 1 and report.rereads.agree == 1  # ai preferred both times, sides swapped
    path.write_text("reader,case,arm_a,arm_b,choice,grade\nr1,c1,ai,expert,a,3\n")
    with pytest.raises(VotesCsvError, match="line 2: bad grade '3'"):
        read_votes_csv(path)
    path.write_text("reader,case,arm_a,arm_b,choice,reread\nr1,c1,ai,expert,a,1\nr1,c1,ai,expert,b,yes\n")
    with pytest.raises(VotesCsvError, match="line 3: duplicate re-read"):
        read_votes_csv(path)
