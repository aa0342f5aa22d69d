"""The benchmark's peers: the work of `ringleader bench embedded`, done by DuckDB or Polars.

    python peers.py ENGINE WORKLOAD INPUT [OUTPUT]

ENGINE is duckdb or polars; WORKLOAD is sort (gensort records: the engine sorts (key, row)
pairs, numpy gathers the records into OUTPUT), sum (the int64 column of Arrow IPC files) or
wordcount (words of text files, counts written to OUTPUT as CSV). The result is the last
line of stdout: records written, the sum, or the number of distinct words. `bench embedded
--peers` runs this with the Python of a virtual environment under target/ and times the
whole process, as it times Ringleader's examples.
"""

import os
import sys


def data_files(directory):
    names = sorted(n for n in os.listdir(directory) if not n.startswith(("_", ".")))
    return [os.path.join(directory, n) for n in names]


def records(directory):
    """The gensort records of a directory, as one numpy array of 100-byte rows."""
    import numpy as np

    parts = [np.fromfile(f, dtype=np.dtype([("key", "V10"), ("payload", "V90")])) for f in data_files(directory)]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def keys_table(rows):
    """The records' keys and row numbers as an Arrow table."""
    import numpy as np
    import pyarrow as pa

    keys = np.ascontiguousarray(rows["key"]).tobytes()
    key = pa.FixedSizeBinaryArray.from_buffers(pa.binary(10), len(rows), [None, pa.py_buffer(keys)])
    return pa.table({"key": key, "row": pa.array(np.arange(len(rows), dtype=np.uint32))})


def sort(engine, directory, output):
    rows = records(directory)
    keys = keys_table(rows)
    if engine == "duckdb":
        import duckdb

        order = duckdb.sql("select row from keys order by key").fetchnumpy()["row"]
    else:
        import polars as pl

        order = pl.from_arrow(keys).sort("key")["row"].to_numpy()
    rows[order].tofile(output)
    return len(rows)


def total(engine, directory):
    import pyarrow as pa

    tables = [pa.ipc.open_file(pa.memory_map(f)).read_all() for f in data_files(directory)]
    numbers = pa.concat_tables(tables)
    column = numbers.column_names[0]
    if engine == "duckdb":
        import duckdb

        return duckdb.sql(f'select sum("{column}")::hugeint from numbers').fetchall()[0][0]
    import polars as pl

    return pl.from_arrow(numbers)[column].sum()


def wordcount(engine, directory, output):
    files = data_files(directory)
    if engine == "duckdb":
        import duckdb

        listed = ", ".join(f"'{f}'" for f in files)
        duckdb.sql(
            f"""create table counts as
                select word, count(*) as count from (
                    select unnest(string_split(line, ' ')) as word
                    from read_csv([{listed}], columns = {{'line': 'VARCHAR'}}, delim = '\\x01',
                                  quote = '', escape = '', header = false, auto_detect = false)
                ) where word <> '' group by word"""
        )
        duckdb.sql(f"copy counts to '{output}' (header false, delimiter '\\t')")
        return duckdb.sql("select count(*) from counts").fetchall()[0][0]
    import polars as pl

    lines = pl.concat(
        [
            pl.read_csv(f, has_header=False, separator="\x01", quote_char=None, new_columns=["line"])
            for f in files
        ]
    )
    counts = (
        lines.select(pl.col("line").str.split(" ").explode().alias("word"))
        .filter(pl.col("word") != "")
        .group_by("word")
        .len()
    )
    counts.write_csv(output, include_header=False, separator="\t")
    return counts.height


def main():
    engine, workload, directory = sys.argv[1:4]
    output = sys.argv[4] if len(sys.argv) > 4 else None
    if engine not in ("duckdb", "polars"):
        sys.exit(f"unknown engine {engine!r}: duckdb or polars")
    if workload == "sort":
        print(sort(engine, directory, output))
    elif workload == "sum":
        print(total(engine, directory))
    elif workload == "wordcount":
        print(wordcount(engine, directory, output))
    else:
        sys.exit(f"unknown workload {workload!r}: sort, sum or wordcount")


if __name__ == "__main__":
    main()
