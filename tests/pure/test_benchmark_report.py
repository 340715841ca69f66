"""The benchmark fails loudly unless every mail arrived exactly once (issue #10)."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "benchmark_report", ROOT / "scripts" / "benchmark_report.py"
)
benchmark_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_report)

RUN = {
    "db": "bench_200_addon",
    "row": "addon",
    "delay_ms": 20,
    "mails": 200,
    "sent": 200,
    "failed": 0,
    "seconds": 4.0,
    "queries": 660,
    "peak_rss_mb": 150.0,
}
COUNTS = {
    "messages": 200,
    "distinct_message_ids": 200,
    "peak_sessions": 4,
    "refused_connections": 0,
}


@pytest.mark.parametrize(
    "run, counts, problem",
    [
        ({}, {}, ""),
        ({}, {"messages": 201}, "received 201 messages"),
        ({}, {"distinct_message_ids": 199}, "with 199 distinct Message-Ids"),
        ({"sent": 199}, {}, "Odoo marked 199 of 200 mails sent"),
        (None, {}, "printed no result"),
        ({}, None, "wrote no counts"),
    ],
)
def test_sink_problem(run, counts, problem):
    run = None if run is None else {**RUN, **run}
    counts = None if counts is None else {**COUNTS, **counts}
    found = benchmark_report.sink_problem(run, counts)
    assert problem in found if problem else found == ""


def test_check_prints_the_run_with_the_sink_and_fails_the_exit_code(tmp_path, capsys):
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps(COUNTS))
    line = "MO_BENCH " + json.dumps(RUN)
    assert benchmark_report.check(line, str(counts)) == 0
    printed = json.loads(capsys.readouterr().out.split(" ", 1)[1])
    assert printed["sink"] == COUNTS and printed["sink_ok"] is True

    counts.write_text(json.dumps({**COUNTS, "messages": 199}))
    assert benchmark_report.check(line, str(counts)) == 1
    out, err = capsys.readouterr()
    assert json.loads(out.split(" ", 1)[1])["sink_ok"] is False
    assert "FAIL (20 ms, 200 mails, addon)" in err
