"""Drives aioipfs's pubsub (unchanged) against cairn daemon A while the
cairn CLI on daemon B subscribes and publishes on the same topic: aioipfs
subscribes (pubsub.sub), publishes text and bytes (pubsub.pub), lists its
topics (pubsub.ls) and the peers (pubsub.peers); B's `cairn pubsub sub
--enc json` must see what aioipfs published, aioipfs's subscription what
B's `cairn pubsub pub` published. Prints what each side saw as one JSON
object (tests/py_clients.rs checks it).

Two things aioipfs 0.7.1 does that Kubo's RPC itself refuses, worked
around here as a user would, and nothing else:
- it picks its pubsub dialect from `id`'s AgentVersion read as a Kubo
  version; cairn's `cairn/0.1.0` reads as a go-ipfs older than 0.11, and
  aioipfs then speaks the pre-0.11 dialect (raw topic and data as URL
  arguments, base64 fields in messages), which Kubo dropped in 0.11 and
  which aioipfs sends broken with its aiohttp (the arguments are quoted
  twice: `a b` arrives as `a%20b`). The script tells aioipfs the daemon
  speaks Kubo >= 0.11's RPC (multibase topics, data as a multipart file),
  which is what cairn speaks.
- `pubsub.peers(topic)` sends the topic as given, where Kubo >= 0.11 wants
  it multibase: the script passes it encoded.
Usage: python aioipfs_pubsub.py < spec.json
(spec: api, topic, cairn, repo_b, peer_b)"""
import asyncio
import json
import sys

import aioipfs
import multibase

# Each wait below gives up after this long (the Rust test kills the script
# later than that).
WAIT_S = 30.0


def mb(data):
    """`u` + base64url, as Kubo's RPC writes topics and data."""
    if isinstance(data, str):
        data = data.encode()
    return multibase.encode("base64url", data).decode()


async def until(what, check, every=0.1):
    """Calls `check()` (a coroutine) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        got = await check()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"waited {WAIT_S}s for {what}")
        await asyncio.sleep(every)


class CliSub:
    """`cairn pubsub sub TOPIC --enc json` on B: its lines, decoded."""

    def __init__(self, proc):
        self.proc = proc

    async def next(self, timeout):
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise EOFError("B's `cairn pubsub sub` ended")
        m = json.loads(line)
        return {"from": m["from"], "data": multibase.decode(m["data"]).hex()}

    async def wait_for(self, data, timeout):
        """The first line carrying `data` (bytes) within `timeout` s, or None."""
        end = asyncio.get_running_loop().time() + timeout
        while True:
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            try:
                m = await self.next(left)
            except asyncio.TimeoutError:
                return None
            if m["data"] == data.hex():
                return m


async def cli_pub(spec, data):
    """`cairn pubsub pub TOPIC -` on B, `data` on its standard input."""
    proc = await asyncio.create_subprocess_exec(
        spec["cairn"], "--repo", spec["repo_b"], "pubsub", "pub", spec["topic"], "-",
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(data)
    if proc.returncode != 0:
        raise RuntimeError(f"cairn pubsub pub failed: {err.decode()}")


async def main(spec):
    topic, peer_b = spec["topic"], spec["peer_b"]
    out = {}
    b_proc = await asyncio.create_subprocess_exec(
        spec["cairn"], "--repo", spec["repo_b"], "pubsub", "sub", topic, "--enc", "json",
        stdout=asyncio.subprocess.PIPE)
    at_b = CliSub(b_proc)
    try:
        async with aioipfs.AsyncIPFS(maddr=spec["api"]) as c:
            # Kubo >= 0.11's dialect (see the top of this file).
            c._agent_version = aioipfs.IpfsDaemonVersion("0.11.0")
            received = asyncio.Queue()

            async def reader():
                async for m in c.pubsub.sub(topic):
                    await received.put(m)

            sub_task = asyncio.create_task(reader())

            async def subscribed():
                ls = (await c.pubsub.ls())["Strings"]
                peers = (await c.pubsub.peers(mb(topic)))["Strings"]
                return topic in ls and peer_b in peers and (ls, peers)

            out["ls"], out["peers_topic"] = await until("A and B on the topic", subscribed)
            out["peers"] = (await c.pubsub.peers())["Strings"]

            # aioipfs -> B. Until B's mesh has A, retry a warm-up message.
            n = 0

            async def heard_by_b():
                nonlocal n
                n += 1
                data = f"warm-up {n}".encode()
                await c.pubsub.pub(topic, data)
                return await at_b.wait_for(data, 0.5)

            await until("B to hear aioipfs", heard_by_b, every=0)
            out["at_b"] = []
            for data in ["hello from aioipfs, ü", b"\x00\x01binary\xfe\xff"]:
                await c.pubsub.pub(topic, data)
                raw = data.encode() if isinstance(data, str) else data
                m = await at_b.wait_for(raw, WAIT_S)
                out["at_b"].append(m)

            # B -> aioipfs, its own messages (a node's subscribers see
            # them) set aside.
            out["echo"] = []

            async def from_b(data, timeout):
                end = asyncio.get_running_loop().time() + timeout
                while True:
                    left = end - asyncio.get_running_loop().time()
                    if left <= 0:
                        return None
                    try:
                        m = await asyncio.wait_for(received.get(), left)
                    except asyncio.TimeoutError:
                        return None
                    if m["from"] != peer_b:
                        out["echo"].append(m["data"].hex())
                    elif m["data"] == data:
                        return m

            k = 0

            async def heard_from_b():
                nonlocal k
                k += 1
                data = f"cairn warm-up {k}".encode()
                await cli_pub(spec, data)
                return await from_b(data, 0.5)

            await until("aioipfs to hear B", heard_from_b, every=0)
            data = b"hello from cairn \xff"
            await cli_pub(spec, data)
            m = await from_b(data, WAIT_S)
            out["from_b"] = m and {
                "from": m["from"],
                "data": m["data"].hex(),
                "seqno_len": len(m["seqno"]),
                "topicIDs": m["topicIDs"],
            }
            sub_task.cancel()
            try:
                await sub_task
            except asyncio.CancelledError:
                pass
    finally:
        b_proc.kill()
        await b_proc.wait()
    return out


print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
