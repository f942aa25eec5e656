"""pandas reads a Parquet file from a cairn daemon through ipfsspec
(fsspec's ipfs:// filesystem), unchanged.

Step "write": makes a frame (fixed contents), writes it with pyarrow to
spec["parquet"]. Step "read": pandas.read_parquet("ipfs://" + spec["cid"])
through the gateway ipfsspec finds by its own configuration (IPIP-280: the
IPFS_GATEWAY environment variable the test sets to the daemon's gateway);
prints one JSON object saying what came back and whether it equals the
frame written. Usage: python ipfsspec_run.py write|read < spec.json"""
import json
import sys

import pandas as pd


def frame():
    n = 60000
    return pd.DataFrame({
        "id": pd.Series(range(n), dtype="int64"),
        "x": pd.Series([(i * 2654435761) % 1000003 / 7.0 for i in range(n)], dtype="float64"),
        "name": pd.Series([f"row-{i:05d}" for i in range(n)], dtype="string"),
        "flag": pd.Series([i % 3 == 0 for i in range(n)], dtype="bool"),
        "when": pd.date_range("2024-01-01", periods=n, freq="h", unit="us"),
    })


def write(spec):
    frame().to_parquet(spec["parquet"], engine="pyarrow", index=False)
    return {"rows": len(frame())}


def read(spec):
    import fsspec
    from ipfsspec.async_ipfs import get_gateway

    # What ipfsspec chose; the test checks it is the daemon's gateway.
    gateway = get_gateway("ipfs").url
    fs = fsspec.filesystem("ipfs")
    info = fs.info(spec["cid"])
    got = pd.read_parquet("ipfs://" + spec["cid"], engine="pyarrow")
    want = frame()
    try:
        pd.testing.assert_frame_equal(got, want)
        problem = None
    except AssertionError as e:
        problem = str(e)
    return {
        "gateway": gateway,
        "info": {k: info[k] for k in ("CID", "type", "size")},
        "rows": len(got),
        "columns": list(got.columns),
        "equal": problem is None,
        "problem": problem,
    }


step = {"write": write, "read": read}[sys.argv[1]]
print(json.dumps(step(json.load(sys.stdin))))
