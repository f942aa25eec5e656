"""Drives ipfshttpclient (unchanged) against a cairn daemon; prints what it
got back as one JSON object (tests/py_clients.rs compares it with cairn's
own answers). Usage: python ipfshttpclient_run.py < spec.json"""
import hashlib
import io
import json
import sys
import warnings

import ipfshttpclient

warnings.simplefilter("ignore")  # urllib3's 'strict' deprecation, noise here
spec = json.load(sys.stdin)


def plain(value):
    """A response as plain JSON values (ipfshttpclient wraps objects)."""
    return value.as_json() if hasattr(value, "as_json") else value


out = {}
# ipfshttpclient.connect() refuses any daemon outside 0.4.23 <= v < 0.8.0,
# Kubo's current releases included; Client() is its documented way around
# that check.
with ipfshttpclient.Client(spec["api"]) as c:
    out["version"] = c.version()["Version"]
    out["id"] = c.id()["ID"]
    added = c.add(spec["file"])
    out["add"] = {k: added[k] for k in ("Name", "Hash", "Size")}
    out["add_bytes"] = c.add_bytes(b"hello from python\n")
    tree = c.add(spec["dir"], recursive=True)
    out["add_dir"] = [[e["Name"], e["Hash"]] for e in tree]
    body = c.cat(added["Hash"])
    out["cat_sha256"] = hashlib.sha256(body).hexdigest()
    part = c.cat(added["Hash"], offset=1000, length=70000)
    out["cat_range_sha256"] = hashlib.sha256(part).hexdigest()
    root = tree[-1]["Hash"]
    listing = c.ls(root)["Objects"][0]["Links"]
    out["ls"] = [[l["Name"], l["Hash"], l["Size"], l["Type"]] for l in listing]
    out["pin_add"] = c.pin.add(out["add_bytes"])["Pins"]
    out["pin_ls"] = sorted(c.pin.ls(type="recursive")["Keys"])
    out["pin_rm"] = c.pin.rm(out["add_bytes"])["Pins"]
    out["pin_ls_after_rm"] = sorted(c.pin.ls(type="recursive")["Keys"])
    gen = c.key.gen("py-key", "ed25519")
    out["key_gen"] = gen["Name"]
    out["key_list"] = sorted(k["Name"] for k in c.key.list()["Keys"])
    out["key_rename"] = c.key.rename("py-key", "py-key-2")["Now"]
    published = c.name.publish("/ipfs/" + root, key="py-key-2", allow_offline=True)
    out["name_publish"] = [published["Name"] == gen["Id"], published["Value"]]
    out["name_resolve"] = c.name.resolve(gen["Id"])["Path"]
    out["key_rm"] = [k["Name"] for k in c.key.rm("py-key-2")["Keys"]]
    out["key_list_after_rm"] = sorted(k["Name"] for k in c.key.list()["Keys"])

    # MFS. ipfshttpclient 0.7.0 has no files.flush (a TODO in its source).
    c.files.mkdir("/py/docs", parents=True)
    with open(spec["file"], "rb") as f:
        c.files.write("/py/docs/data.bin", f, create=True)
    c.files.write("/py/docs/note.txt", io.BytesIO(b"first draft\n"), create=True)
    c.files.write("/py/docs/note.txt", io.BytesIO(b"FINAL"), offset=6)
    out["files_read_note"] = c.files.read("/py/docs/note.txt").decode()
    body = c.files.read("/py/docs/data.bin")
    out["files_read_sha256"] = hashlib.sha256(body).hexdigest()
    part = c.files.read("/py/docs/data.bin", offset=5000, count=300000)
    out["files_read_range_sha256"] = hashlib.sha256(part).hexdigest()
    stat = c.files.stat("/py/docs/data.bin")
    out["files_stat"] = {k: stat[k] for k in ("Hash", "Size", "Type")}
    c.files.cp("/ipfs/" + root, "/py/tree")
    out["files_stat_tree"] = c.files.stat("/py/tree")["Hash"]
    c.files.cp("/py/docs/note.txt", "/py/tree/note-copy.txt")
    c.files.mv("/py/tree/a.txt", "/py/docs/a-moved.txt")
    c.files.rm("/py/tree/sub", recursive=True)
    out["files_ls_docs"] = sorted(
        e["Name"] for e in c.files.ls("/py/docs")["Entries"])
    out["files_ls_tree"] = sorted(
        e["Name"] for e in c.files.ls("/py/tree")["Entries"])
    out["files_stat_root"] = c.files.stat("/py")["Hash"]

    # DAG: ipfshttpclient sends format=cbor&input-enc=json (the pre-0.10
    # names); Kubo's defaults (dag-cbor from dag-json) are what it means.
    put = c.dag.put(spec["dag_json"])
    out["dag_put"] = put["Cid"]["/"]
    out["dag_get"] = plain(c.dag.get(out["dag_put"]))
    out["dag_get_path"] = plain(c.dag.get(out["dag_put"] + "/nested/list/1"))
    r = c.dag.resolve(out["dag_put"] + "/link/sub")
    out["dag_resolve"] = [r["Cid"]["/"], r["RemPath"]]
print(json.dumps(out))
