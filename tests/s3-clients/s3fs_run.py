"""Drives s3fs, pyarrow and pandas against cairn's S3 endpoint
(tests/s3_clients.rs), as a data pipeline would use them on `s3://`.

Reads a JSON spec on stdin: {"endpoint", "key", "secret", "parts" (rows
per Parquet file, one file each), "csv" (rows of [name, value]),
"large_file" (a file past 5 MiB to write in parts)}. Prints
one JSON object on its last line with what each step saw; the Rust test
checks the values. A step that fails raises (non-zero exit, traceback).
"""

import hashlib
import json
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import s3fs

spec = json.load(sys.stdin)
out = {}

# What a user passes to s3fs, and to pandas as storage_options.
options = {
    "key": spec["key"],
    "secret": spec["secret"],
    "client_kwargs": {"endpoint_url": spec["endpoint"], "region_name": "us-east-1"},
}
fs = s3fs.S3FileSystem(**options)

fs.mkdir("tables")
out["buckets"] = sorted(fs.ls(""))


def part_table(i, rows):
    return pa.table(
        {
            "part": pa.array([i] * rows, pa.int32()),
            "n": pa.array(range(rows), pa.int64()),
            "label": pa.array([f"row-{i}-{j}" for j in range(rows)]),
        }
    )


# A Parquet dataset of several files, written and read back on s3://.
written = []
for i, rows in enumerate(spec["parts"]):
    table = part_table(i, rows)
    pq.write_table(table, f"s3://tables/events/part-{i}.parquet", filesystem=fs)
    written.append(table)
out["dataset_files"] = sorted(fs.ls("tables/events", refresh=True))
# A directory is read by its path in the filesystem given (pyarrow refuses
# an s3:// URL for a directory of an fsspec filesystem: its listing's paths
# lack the scheme); single files take the URL.
dataset = pq.read_table("tables/events/", filesystem=fs)
out["dataset_rows"] = dataset.num_rows
out["dataset_n_sum"] = sum(dataset.column("n").to_pylist())
ordered = dataset.sort_by([("part", "ascending"), ("n", "ascending")])
out["dataset_equal"] = ordered.equals(pa.concat_tables(written))
one = pq.read_table("s3://tables/events/part-1.parquet", filesystem=fs, columns=["label"])
out["part1_last_label"] = one.column("label")[-1].as_py()
# The same dataset through pandas and storage_options.
frame = pd.read_parquet("s3://tables/events/", storage_options=options)
out["pandas_parquet_rows"] = len(frame)

# CSV through pandas: to_csv and read_csv on s3://.
csv = pd.DataFrame(spec["csv"], columns=["name", "value"])
csv.to_csv("s3://tables/csv/frame.csv", index=False, storage_options=options)
back = pd.read_csv("s3://tables/csv/frame.csv", storage_options=options)
out["csv_equal"] = back.equals(csv)
out["csv_sha256"] = hashlib.sha256(fs.cat_file("tables/csv/frame.csv")).hexdigest()
out["csv_value_sum"] = int(back["value"].sum())

# The file-system view s3fs gives of what was written.
fs.invalidate_cache()
info = fs.info("tables/csv/frame.csv")
out["csv_size"] = info["size"]
out["csv_etag"] = info["ETag"]
out["csv_head"] = fs.cat_file("tables/csv/frame.csv", start=0, end=10).decode()
out["top"] = sorted(fs.ls("tables"))
out["isdir_events"] = fs.isdir("tables/events")
out["exists_missing"] = fs.exists("tables/missing.csv")
out["find"] = sorted(fs.find("tables"))

# Deleting one file, then the rest one by one (rm of many keys at once is
# a DeleteObjects).
fs.rm_file("tables/csv/frame.csv")
fs.invalidate_cache()
out["exists_after_rm"] = fs.exists("tables/csv/frame.csv")
for path in fs.find("tables"):
    fs.rm_file(path)
fs.invalidate_cache()
out["left_after_rm"] = fs.find("tables")

# A file past 5 MiB written through s3fs's buffered writer with 5 MiB
# blocks, 1 MiB a write: a multipart upload of 5 MiB parts and a smaller
# last one; read back whole and through the file's own reads.
with open(spec["large_file"], "rb") as f:
    large = f.read()
with fs.open("tables/large.bin", "wb", block_size=5 * 2**20) as f:
    for i in range(0, len(large), 2**20):
        f.write(large[i : i + 2**20])
fs.invalidate_cache()
out["large_size"] = fs.info("tables/large.bin")["size"]
out["large_etag"] = fs.info("tables/large.bin")["ETag"]
out["large_cat_sha256"] = hashlib.sha256(fs.cat_file("tables/large.bin")).hexdigest()
with fs.open("tables/large.bin", "rb", block_size=2**20) as f:
    out["large_read_sha256"] = hashlib.sha256(f.read()).hexdigest()
fs.rm_file("tables/large.bin")

print(json.dumps(out))
