from pipelines.core.report import table


def test_table_pads_columns() -> None:
    assert table(["a", "bb"], [["xxx", "y"]]).splitlines() == [
        "| a   | bb |", "|-----|----|", "| xxx | y  |"]
