"""Drives ipfshttpclient (unchanged) against a cairn daemon; prints what it
got back as one JSON object (tests/py_clients.rs compares it with cairn's
own answers). Usage: python ipfshttpclient_run.py < spec.json"""
import hashlib
import json
import sys
import warnings

import ipfshttpclient

warnings.simplefilter("ignore")  # urllib3's 'strict' deprecation, noise here
spec = json.load(sys.stdin)
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
print(json.dumps(out))
