"""The db-benchmark's questions answered by DuckDB or Polars, for `ringleader bench dbbench`.

    python dbbench.py ENGINE groupby G1_FILE.csv
    python dbbench.py ENGINE join J1_DIRECTORY

ENGINE is duckdb or polars. The table(s) are loaded into memory from the CSV file(s) once
(timed as "load"), then each question is answered and timed, printing lines in the format
of Ringleader's examples (examples/groupby.rs, examples/join.rs):

    load: N rows in S s
    qK: TITLE: S s, checksum ROWS SUM1 SUM2 ...

a checksum being the answer's rows and the sum of each value column (nulls and NaN
skipped), so the bench can check every answer against Ringleader's.
"""

import math
import os
import sys
import time

GROUPBY = [
    ("sum v1 by id1", "SELECT id1, sum(v1) AS v1 FROM x GROUP BY id1", 1),
    ("sum v1 by id1:id2", "SELECT id1, id2, sum(v1) AS v1 FROM x GROUP BY id1, id2", 2),
    ("sum v1 mean v3 by id3", "SELECT id3, sum(v1) AS v1, avg(v3) AS v3 FROM x GROUP BY id3", 1),
    ("mean v1:v3 by id4", "SELECT id4, avg(v1) AS v1, avg(v2) AS v2, avg(v3) AS v3 FROM x GROUP BY id4", 1),
    ("sum v1:v3 by id6", "SELECT id6, sum(v1) AS v1, sum(v2) AS v2, sum(v3) AS v3 FROM x GROUP BY id6", 1),
    ("median v3 sd v3 by id4 id5",
     "SELECT id4, id5, quantile_cont(v3, 0.5) AS median_v3, stddev(v3) AS sd_v3 FROM x GROUP BY id4, id5", 2),
    ("max v1 - min v2 by id3", "SELECT id3, max(v1) - min(v2) AS range_v1_v2 FROM x GROUP BY id3", 1),
    ("largest two v3 by id6",
     "SELECT id6, v3 AS largest2_v3 FROM (SELECT id6, v3, row_number() OVER (PARTITION BY id6 ORDER BY v3 DESC)"
     " AS order_v3 FROM x WHERE v3 IS NOT NULL) sub_query WHERE order_v3 <= 2", 1),
    ("regression v1 v2 by id2 id4", "SELECT id2, id4, pow(corr(v1, v2), 2) AS r2 FROM x GROUP BY id2, id4", 2),
    ("sum v3 count by id1:id6",
     "SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v3, count(*) AS count FROM x GROUP BY id1, id2, id3, id4, id5, id6", 6),
]

JOIN = [
    ("small inner on int", "x JOIN small USING (id1)", ("small", "id1", "inner")),
    ("medium inner on int", "x JOIN medium USING (id2)", ("medium", "id2", "inner")),
    ("medium outer on int", "x LEFT JOIN medium USING (id2)", ("medium", "id2", "left")),
    ("medium inner on factor", "x JOIN medium USING (id5)", ("medium", "id5", "inner")),
    ("big inner on int", "x JOIN big USING (id3)", ("big", "id3", "inner")),
]


def finite(v):
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def report(q, title, started, rows, sums):
    seconds = time.perf_counter() - started
    shown = " ".join(repr(float(v)) for v in [rows] + sums)
    print(f"q{q}: {title}: {seconds:.3f} s, checksum {shown}", flush=True)
    return seconds


def duckdb_groupby(path):
    import duckdb

    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(f"CREATE TABLE x AS SELECT * FROM read_csv_auto('{path}')")
    rows = con.execute("SELECT count(*) FROM x").fetchone()[0]
    print(f"load: {rows} rows in {time.perf_counter() - started:.3f} s", flush=True)
    total = 0.0
    for q, (title, sql, keys) in enumerate(GROUPBY, 1):
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE ans AS {sql}")
        columns = [c[0] for c in con.execute("DESCRIBE ans").fetchall()][keys:]
        sums = ", ".join(f"sum(CASE WHEN isnan({c}::DOUBLE) THEN NULL ELSE {c}::DOUBLE END)" for c in columns)
        got = con.execute(f"SELECT count(*), {sums} FROM ans").fetchone()
        total += report(q, title, started, got[0], [v if finite(v) else 0.0 for v in got[1:]])
    print(f"total: {total:.3f} s for {len(GROUPBY)} questions")


def duckdb_join(directory):
    import duckdb

    con = duckdb.connect()
    for name in ("x", "small", "medium", "big"):
        path = [f for f in os.listdir(directory) if f.endswith(f"_{name}.csv")][0]
        started = time.perf_counter()
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv_auto('{os.path.join(directory, path)}')")
        rows = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        print(f"load {name}: {rows} rows in {time.perf_counter() - started:.3f} s", flush=True)
    total = 0.0
    for q, (title, joined, _) in enumerate(JOIN, 1):
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE ans AS SELECT * FROM {joined}")
        got = con.execute("SELECT count(*), sum(v1), sum(v2) FROM ans").fetchone()
        total += report(q, title, started, got[0], [v if finite(v) else 0.0 for v in got[1:]])
    print(f"total: {total:.3f} s for {len(JOIN)} questions")


def polars_groupby(path):
    import polars as pl

    started = time.perf_counter()
    x = pl.read_csv(path)
    print(f"load: {x.height} rows in {time.perf_counter() - started:.3f} s", flush=True)
    c = pl.col
    answers = [
        lambda: x.group_by("id1").agg(c("v1").sum()),
        lambda: x.group_by(["id1", "id2"]).agg(c("v1").sum()),
        lambda: x.group_by("id3").agg(c("v1").sum(), c("v3").mean()),
        lambda: x.group_by("id4").agg(c("v1").mean(), c("v2").mean(), c("v3").mean()),
        lambda: x.group_by("id6").agg(c("v1").sum(), c("v2").sum(), c("v3").sum()),
        lambda: x.group_by(["id4", "id5"]).agg(c("v3").median().alias("median_v3"), c("v3").std().alias("sd_v3")),
        lambda: x.group_by("id3").agg((c("v1").max() - c("v2").min()).alias("range_v1_v2")),
        lambda: x.drop_nulls("v3").group_by("id6").agg(c("v3").top_k(2).alias("largest2_v3")).explode("largest2_v3"),
        lambda: x.group_by(["id2", "id4"]).agg((pl.corr("v1", "v2") ** 2).alias("r2")),
        lambda: x.group_by(["id1", "id2", "id3", "id4", "id5", "id6"]).agg(c("v3").sum(), pl.len().alias("count")),
    ]
    total = 0.0
    for q, ((title, _, keys), answer) in enumerate(zip(GROUPBY, answers), 1):
        started = time.perf_counter()
        ans = answer()
        sums = [ans[col].cast(pl.Float64).fill_nan(None).sum() for col in ans.columns[keys:]]
        total += report(q, title, started, ans.height, [v if finite(v) else 0.0 for v in sums])
    print(f"total: {total:.3f} s for {len(GROUPBY)} questions")


def polars_join(directory):
    import polars as pl

    tables = {}
    for name in ("x", "small", "medium", "big"):
        path = [f for f in os.listdir(directory) if f.endswith(f"_{name}.csv")][0]
        started = time.perf_counter()
        tables[name] = pl.read_csv(os.path.join(directory, path))
        print(f"load {name}: {tables[name].height} rows in {time.perf_counter() - started:.3f} s", flush=True)
    total = 0.0
    for q, (title, _, (other, key, how)) in enumerate(JOIN, 1):
        started = time.perf_counter()
        right = tables[other].select([key, "v2"])
        ans = tables["x"].join(right, on=key, how=how)
        sums = [ans["v1"].sum(), ans["v2"].sum()]
        total += report(q, title, started, ans.height, [v if finite(v) else 0.0 for v in sums])
    print(f"total: {total:.3f} s for {len(JOIN)} questions")


def main():
    engine, task, path = sys.argv[1:4]
    runs = {
        ("duckdb", "groupby"): duckdb_groupby,
        ("duckdb", "join"): duckdb_join,
        ("polars", "groupby"): polars_groupby,
        ("polars", "join"): polars_join,
    }
    if (engine, task) not in runs:
        sys.exit(f"usage: dbbench.py duckdb|polars groupby|join PATH (not {engine} {task})")
    runs[(engine, task)](path)


if __name__ == "__main__":
    main()
