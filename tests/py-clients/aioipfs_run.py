"""Drives aioipfs (unchanged) against a cairn daemon: add, cat, ls, pin,
files (MFS), key, name and dag; prints what it got back as one JSON object
(tests/py_clients.rs compares it with cairn's own answers).
Usage: python aioipfs_run.py < spec.json"""
import asyncio
import hashlib
import json
import sys

import aioipfs


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def names(keys):
    return sorted(k["Name"] for k in keys["Keys"])


async def main(spec):
    out = {}
    async with aioipfs.AsyncIPFS(maddr=spec["api"]) as c:
        out["version"] = (await c.version())["Version"]
        out["id"] = (await c.id())["ID"]

        # add / cat / ls
        out["add"] = [[e["Name"], e["Hash"]] async for e in c.add(spec["file"])]
        tree = [[e["Name"], e["Hash"]] async for e in c.add(spec["dir"], recursive=True)]
        out["add_dir"] = tree
        root = tree[-1][1]
        out["add_bytes"] = (await c.add_bytes(b"hello from aioipfs\n"))["Hash"]
        file_cid = out["add"][0][1]
        out["cat_sha256"] = sha256(await c.cat(file_cid))
        out["cat_range_sha256"] = sha256(await c.cat(file_cid, offset=1000, length=70000))
        listing = (await c.ls(root))["Objects"][0]["Links"]
        out["ls"] = [[l["Name"], l["Hash"], l["Size"], l["Type"]] for l in listing]

        # pin
        out["pin_add"] = [p async for p in c.pin.add(out["add_bytes"])][-1]["Pins"]
        out["pin_ls"] = sorted((await c.pin.ls(pintype="recursive"))["Keys"])
        out["pin_rm"] = (await c.pin.rm(out["add_bytes"]))["Pins"]
        out["pin_ls_after_rm"] = sorted((await c.pin.ls(pintype="recursive"))["Keys"])

        # files (MFS); aioipfs writes with raw-leaves=false unless told
        await c.files.mkdir("/aio/docs", parents=True)
        await c.files.write("/aio/docs/data.bin", spec["file"], create=True)
        await c.files.write("/aio/docs/note.txt", b"first draft\n", create=True)
        await c.files.write("/aio/docs/note.txt", b"FINAL", offset=6)
        out["files_read_note"] = (await c.files.read("/aio/docs/note.txt")).decode()
        out["files_read_sha256"] = sha256(await c.files.read("/aio/docs/data.bin"))
        part = await c.files.read("/aio/docs/data.bin", offset=5000, count=300000)
        out["files_read_range_sha256"] = sha256(part)
        stat = await c.files.stat("/aio/docs/data.bin")
        out["files_stat"] = {k: stat[k] for k in ("Hash", "Size", "Type")}
        await c.files.cp("/ipfs/" + root, "/aio/tree")
        out["files_stat_tree"] = (await c.files.stat("/aio/tree"))["Hash"]
        await c.files.cp("/aio/docs/note.txt", "/aio/tree/note-copy.txt")
        await c.files.mv("/aio/tree/a.txt", "/aio/docs/a-moved.txt")
        await c.files.rm("/aio/tree/sub", recursive=True)
        docs = (await c.files.ls("/aio/docs", long=True))["Entries"]
        out["files_ls_docs"] = sorted([e["Name"], e["Type"], e["Hash"]] for e in docs)
        tree_ls = (await c.files.ls("/aio/tree"))["Entries"]
        out["files_ls_tree"] = sorted(e["Name"] for e in tree_ls)
        out["files_flush"] = (await c.files.flush("/aio"))["Cid"]
        out["files_stat_root"] = (await c.files.stat("/aio"))["Hash"]

        # key / name
        gen = await c.key.gen("aio-key", type="ed25519")
        out["key_gen"] = gen["Name"]
        out["key_list"] = names(await c.key.list())
        out["key_rename"] = (await c.key.rename("aio-key", "aio-key-2"))["Now"]
        published = await c.name.publish(
            "/ipfs/" + root, key="aio-key-2", allow_offline=True)
        out["name_publish"] = [published["Name"] == gen["Id"], published["Value"]]
        out["name_resolve"] = (await c.name.resolve(gen["Id"]))["Path"]
        out["key_rm"] = [k["Name"] for k in (await c.key.rm("aio-key-2"))["Keys"]]
        out["key_list_after_rm"] = names(await c.key.list())

        # dag
        put = await c.dag.put(spec["dag_json"])
        cid = put["Cid"]["/"]
        out["dag_put"] = cid
        out["dag_get"] = json.loads(await c.dag.get(cid))
        out["dag_get_path"] = json.loads(await c.dag.get(cid + "/nested/list/1"))
        r = await c.dag.resolve(cid + "/link/sub")
        out["dag_resolve"] = [r["Cid"]["/"], r["RemPath"]]
        out["pin_ls_dag"] = cid in (await c.pin.ls(pintype="recursive"))["Keys"]
    return out


print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
