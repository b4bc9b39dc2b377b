"""Lease tables for fastkin.Consumer: who processes which shard, and how far it got.

A lease has the KCL's fields:

    leaseKey                      the shard id
    leaseOwner                    worker id, or None when free
    leaseCounter                  bumped by every renewal, take, checkpoint and release
    checkpoint                    a sequence number, or TRIM_HORIZON / LATEST / AT_TIMESTAMP / SHARD_END
    checkpointSubSequenceNumber   position inside a KPL aggregated record (0 when not aggregated)
    ownerSwitchesSinceCheckpoint  how often the lease changed hands since its last checkpoint
    pendingOwner                  a worker that asked for the lease (graceful handoff), or None
    parentShardIds                the shard's parents (a child is processed after all of them end)
    startingHashKey, endingHashKey

Every change is a conditional write on (leaseCounter[, leaseOwner]), so two workers can never both
believe they hold a lease. Expiry is judged by each worker from its own clock: a lease whose counter
has not moved for ``failover_time`` is expired (the KCL's rule; no clock is shared).

Graceful handoff (balancing without duplicates) uses two more conditional writes:

    request(key, counter, owner, requester)   only if the counter and owner are as read and no request is
                                              pending: pendingOwner := requester. The counter is NOT bumped:
                                              it is the owner's heartbeat (a requester moving it would keep
                                              a dead owner's lease looking alive) and the owner's own
                                              conditional writes (renew, checkpoint) must keep succeeding.
    handoff(key, counter, owner, to, cp, sub) only the owner, only while pendingOwner = to: checkpoint and
                                              transfer in one write (leaseOwner := to, pendingOwner := None,
                                              counter + 1).

``take`` (of a free or expired lease) and ``release`` clear pendingOwner; renew and checkpoint keep it.

Three stores: MemoryLeaseStore (threads of one process), SQLiteLeaseStore (processes on one machine,
one file) and DynamoDBLeaseStore (the KCL's own store on AWS, through boto3).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time

FIELDS = ("leaseKey", "leaseOwner", "leaseCounter", "checkpoint", "checkpointSubSequenceNumber",
          "ownerSwitchesSinceCheckpoint", "parentShardIds", "startingHashKey", "endingHashKey", "pendingOwner")
SHARD_END = "SHARD_END"


def new_lease(shard_id: str, checkpoint: str, parents: list[str], start: int, end: int) -> dict:
    return {"leaseKey": shard_id, "leaseOwner": None, "leaseCounter": 0, "checkpoint": checkpoint,
            "checkpointSubSequenceNumber": 0, "ownerSwitchesSinceCheckpoint": 0, "parentShardIds": list(parents),
            "startingHashKey": str(start), "endingHashKey": str(end), "pendingOwner": None}


class LeaseStore:
    """The interface. Conditional methods return False (and change nothing) when the condition fails."""

    def create_if_absent(self, lease: dict) -> bool:
        raise NotImplementedError

    def list(self) -> list[dict]:
        raise NotImplementedError

    def get(self, key: str) -> dict | None:
        raise NotImplementedError

    def take(self, key: str, counter: int, owner: str) -> bool:
        raise NotImplementedError

    def renew(self, key: str, counter: int, owner: str) -> bool:
        raise NotImplementedError

    def checkpoint(self, key: str, counter: int, owner: str, checkpoint: str, sub: int) -> bool:
        raise NotImplementedError

    def release(self, key: str, counter: int, owner: str) -> bool:
        raise NotImplementedError

    def request(self, key: str, counter: int, owner: str, requester: str) -> bool:
        """Ask ``owner`` to hand the lease over to ``requester`` (the counter is left as it is)."""
        raise NotImplementedError

    def handoff(self, key: str, counter: int, owner: str, to: str, checkpoint: str, sub: int) -> bool:
        """The owner checkpoints and transfers the lease to the worker that requested it."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError


class MemoryLeaseStore(LeaseStore):
    """A lease table in this process's memory; ``MemoryLeaseStore.shared(name)`` gives one per name."""

    _registry: dict[str, MemoryLeaseStore] = {}
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self._rows: dict[str, dict] = {}
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, name: str) -> MemoryLeaseStore:
        with cls._registry_lock:
            store = cls._registry.get(name)
            if store is None:
                store = cls._registry[name] = cls()
            return store

    def create_if_absent(self, lease: dict) -> bool:
        with self._lock:
            if lease["leaseKey"] in self._rows:
                return False
            self._rows[lease["leaseKey"]] = dict(lease, parentShardIds=list(lease["parentShardIds"]))
            return True

    def list(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._rows.values()]

    def get(self, key: str) -> dict | None:
        with self._lock:
            r = self._rows.get(key)
            return dict(r) if r else None

    def _update(self, key, counter, owner, check_owner: bool, bump: bool = True, pending=..., **changes) -> bool:
        with self._lock:
            r = self._rows.get(key)
            if r is None or r["leaseCounter"] != counter or (check_owner and r["leaseOwner"] != owner) \
                    or (pending is not ... and r.get("pendingOwner") != pending):
                return False
            r.update(changes)
            if bump:
                r["leaseCounter"] = counter + 1
            return True

    def take(self, key, counter, owner) -> bool:
        with self._lock:
            r = self._rows.get(key)
            switches = (r or {}).get("ownerSwitchesSinceCheckpoint", 0) + (1 if r and r["leaseOwner"] != owner else 0)
        return self._update(key, counter, owner, False, leaseOwner=owner, ownerSwitchesSinceCheckpoint=switches,
                            pendingOwner=None)

    def renew(self, key, counter, owner) -> bool:
        return self._update(key, counter, owner, True)

    def checkpoint(self, key, counter, owner, checkpoint, sub) -> bool:
        return self._update(key, counter, owner, True, checkpoint=checkpoint, checkpointSubSequenceNumber=sub,
                            ownerSwitchesSinceCheckpoint=0)

    def release(self, key, counter, owner) -> bool:
        return self._update(key, counter, owner, True, leaseOwner=None, pendingOwner=None)

    def request(self, key, counter, owner, requester) -> bool:
        return self._update(key, counter, owner, True, bump=False, pending=None, pendingOwner=requester)

    def handoff(self, key, counter, owner, to, checkpoint, sub) -> bool:
        return self._update(key, counter, owner, True, pending=to, leaseOwner=to, pendingOwner=None,
                            checkpoint=checkpoint, checkpointSubSequenceNumber=sub, ownerSwitchesSinceCheckpoint=1)

    def delete(self, key) -> None:
        with self._lock:
            self._rows.pop(key, None)


class SQLiteLeaseStore(LeaseStore):
    """A lease table in a SQLite file, shared by every process on the machine that opens it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        with self._conn() as c:
            c.execute("""CREATE TABLE IF NOT EXISTS leases (
                leaseKey TEXT PRIMARY KEY, leaseOwner TEXT, leaseCounter INTEGER NOT NULL,
                checkpoint TEXT NOT NULL, checkpointSubSequenceNumber INTEGER NOT NULL,
                ownerSwitchesSinceCheckpoint INTEGER NOT NULL, parentShardIds TEXT NOT NULL,
                startingHashKey TEXT, endingHashKey TEXT, pendingOwner TEXT)""")
            if "pendingOwner" not in {r[1] for r in c.execute("PRAGMA table_info(leases)")}:
                try:                            # a table made before graceful handoff
                    c.execute("ALTER TABLE leases ADD COLUMN pendingOwner TEXT")
                except sqlite3.OperationalError:
                    pass                        # another process added it first

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            c.execute("PRAGMA busy_timeout=30000")
            # Switching to WAL needs the file to itself, and SQLite answers "database is locked" at once (no busy
            # wait) when another process holds it, as several workers starting together do: ask again.
            for attempt in range(200):
                try:
                    if c.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        c.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError:
                    if attempt == 199:
                        raise
                    time.sleep(0.05)
            self._local.conn = c
        return c

    @staticmethod
    def _row(r) -> dict:
        d = dict(zip(FIELDS, r))
        d["parentShardIds"] = json.loads(d["parentShardIds"])
        return d

    def create_if_absent(self, lease: dict) -> bool:
        cur = self._conn().execute(
            f"INSERT OR IGNORE INTO leases ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})",
            [json.dumps(lease[f]) if f == "parentShardIds" else lease[f] for f in FIELDS])
        return cur.rowcount == 1

    def list(self) -> list[dict]:
        return [self._row(r) for r in self._conn().execute(f"SELECT {', '.join(FIELDS)} FROM leases")]

    def get(self, key: str) -> dict | None:
        r = self._conn().execute(f"SELECT {', '.join(FIELDS)} FROM leases WHERE leaseKey = ?", (key,)).fetchone()
        return self._row(r) if r else None

    def take(self, key, counter, owner) -> bool:
        cur = self._conn().execute(
            "UPDATE leases SET leaseOwner = ?, leaseCounter = leaseCounter + 1, pendingOwner = NULL, "
            "ownerSwitchesSinceCheckpoint = "
            "ownerSwitchesSinceCheckpoint + (CASE WHEN leaseOwner IS ? THEN 0 ELSE 1 END) "
            "WHERE leaseKey = ? AND leaseCounter = ?", (owner, owner, key, counter))
        return cur.rowcount == 1

    def renew(self, key, counter, owner) -> bool:
        cur = self._conn().execute(
            "UPDATE leases SET leaseCounter = leaseCounter + 1 WHERE leaseKey = ? AND leaseCounter = ? "
            "AND leaseOwner = ?", (key, counter, owner))
        return cur.rowcount == 1

    def checkpoint(self, key, counter, owner, checkpoint, sub) -> bool:
        cur = self._conn().execute(
            "UPDATE leases SET leaseCounter = leaseCounter + 1, checkpoint = ?, checkpointSubSequenceNumber = ?, "
            "ownerSwitchesSinceCheckpoint = 0 WHERE leaseKey = ? AND leaseCounter = ? AND leaseOwner = ?",
            (checkpoint, sub, key, counter, owner))
        return cur.rowcount == 1

    def release(self, key, counter, owner) -> bool:
        cur = self._conn().execute(
            "UPDATE leases SET leaseOwner = NULL, pendingOwner = NULL, leaseCounter = leaseCounter + 1 "
            "WHERE leaseKey = ? AND leaseCounter = ? AND leaseOwner = ?", (key, counter, owner))
        return cur.rowcount == 1

    def request(self, key, counter, owner, requester) -> bool:
        cur = self._conn().execute(
            "UPDATE leases SET pendingOwner = ? WHERE leaseKey = ? AND leaseCounter = ? AND leaseOwner = ? "
            "AND pendingOwner IS NULL", (requester, key, counter, owner))
        return cur.rowcount == 1

    def handoff(self, key, counter, owner, to, checkpoint, sub) -> bool:
        cur = self._conn().execute(
            "UPDATE leases SET leaseOwner = ?, pendingOwner = NULL, leaseCounter = leaseCounter + 1, checkpoint = ?, "
            "checkpointSubSequenceNumber = ?, ownerSwitchesSinceCheckpoint = 1 WHERE leaseKey = ? "
            "AND leaseCounter = ? AND leaseOwner = ? AND pendingOwner = ?",
            (to, checkpoint, sub, key, counter, owner, to))
        return cur.rowcount == 1

    def delete(self, key) -> None:
        self._conn().execute("DELETE FROM leases WHERE leaseKey = ?", (key,))


class DynamoDBLeaseStore(LeaseStore):
    """The KCL's lease table in DynamoDB (hash key ``leaseKey``), with conditional writes, through boto3."""

    def __init__(self, table_name: str, client=None, create: bool = True) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table = table_name
        self.client = client
        if create:
            self._create_table()

    def _create_table(self) -> None:
        try:
            self.client.create_table(
                TableName=self.table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}])
            self.client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1})
        except self.client.exceptions.ResourceInUseException:
            pass

    @staticmethod
    def _item(lease: dict) -> dict:
        item = {"leaseKey": {"S": lease["leaseKey"]}, "leaseCounter": {"N": str(lease["leaseCounter"])},
                "checkpoint": {"S": lease["checkpoint"]},
                "checkpointSubSequenceNumber": {"N": str(lease["checkpointSubSequenceNumber"])},
                "ownerSwitchesSinceCheckpoint": {"N": str(lease["ownerSwitchesSinceCheckpoint"])},
                "startingHashKey": {"S": lease["startingHashKey"]}, "endingHashKey": {"S": lease["endingHashKey"]}}
        if lease["parentShardIds"]:
            item["parentShardId"] = {"SS": list(lease["parentShardIds"])}
        if lease["leaseOwner"] is not None:
            item["leaseOwner"] = {"S": lease["leaseOwner"]}
        if lease.get("pendingOwner") is not None:
            item["pendingOwner"] = {"S": lease["pendingOwner"]}
        return item

    @staticmethod
    def _lease(item: dict) -> dict:
        return {"leaseKey": item["leaseKey"]["S"], "leaseOwner": item.get("leaseOwner", {}).get("S"),
                "leaseCounter": int(item["leaseCounter"]["N"]), "checkpoint": item["checkpoint"]["S"],
                "checkpointSubSequenceNumber": int(item.get("checkpointSubSequenceNumber", {"N": "0"})["N"]),
                "ownerSwitchesSinceCheckpoint": int(item.get("ownerSwitchesSinceCheckpoint", {"N": "0"})["N"]),
                "parentShardIds": sorted(item.get("parentShardId", {}).get("SS", [])),
                "startingHashKey": item.get("startingHashKey", {}).get("S"),
                "endingHashKey": item.get("endingHashKey", {}).get("S"),
                "pendingOwner": item.get("pendingOwner", {}).get("S")}

    def _conditional(self, fn, **kw) -> bool:
        try:
            fn(**kw)
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def create_if_absent(self, lease: dict) -> bool:
        return self._conditional(self.client.put_item, TableName=self.table, Item=self._item(lease),
                                 ConditionExpression="attribute_not_exists(leaseKey)")

    def list(self) -> list[dict]:
        out, kw = [], {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.client.scan(**kw)
            out += [self._lease(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return out
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, key: str) -> dict | None:
        item = self.client.get_item(TableName=self.table, Key={"leaseKey": {"S": key}}, ConsistentRead=True).get("Item")
        return self._lease(item) if item else None

    def _update(self, key, counter, owner, check_owner: bool, set_expr: str, values: dict,
                cond_extra: str = "") -> bool:
        cond = "leaseCounter = :c" + (" AND leaseOwner = :o" if check_owner else "") + cond_extra
        values = {":c": {"N": str(counter)}, **({":one": {"N": "1"}} if ":one" in set_expr else {}), **values}
        if check_owner:
            values[":o"] = {"S": owner}
        return self._conditional(self.client.update_item, TableName=self.table, Key={"leaseKey": {"S": key}},
                                 UpdateExpression=set_expr, ConditionExpression=cond, ExpressionAttributeValues=values)

    def take(self, key, counter, owner) -> bool:
        cur = self.get(key)
        switch = 1 if cur and cur["leaseOwner"] != owner else 0
        return self._update(key, counter, owner, False,
                            "SET leaseOwner = :n, leaseCounter = leaseCounter + :one, "
                            "ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :s REMOVE pendingOwner",
                            {":n": {"S": owner}, ":s": {"N": str(switch)}})

    def renew(self, key, counter, owner) -> bool:
        return self._update(key, counter, owner, True, "SET leaseCounter = leaseCounter + :one", {})

    def checkpoint(self, key, counter, owner, checkpoint, sub) -> bool:
        return self._update(key, counter, owner, True,
                            "SET leaseCounter = leaseCounter + :one, checkpoint = :cp, "
                            "checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :zero",
                            {":cp": {"S": checkpoint}, ":sub": {"N": str(sub)}, ":zero": {"N": "0"}})

    def release(self, key, counter, owner) -> bool:
        return self._update(key, counter, owner, True,
                            "SET leaseCounter = leaseCounter + :one REMOVE leaseOwner, pendingOwner", {})

    def request(self, key, counter, owner, requester) -> bool:
        return self._update(key, counter, owner, True, "SET pendingOwner = :r", {":r": {"S": requester}},
                            " AND attribute_not_exists(pendingOwner)")

    def handoff(self, key, counter, owner, to, checkpoint, sub) -> bool:
        return self._update(key, counter, owner, True,
                            "SET leaseOwner = :to, leaseCounter = leaseCounter + :one, checkpoint = :cp, "
                            "checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :one "
                            "REMOVE pendingOwner",
                            {":to": {"S": to}, ":cp": {"S": checkpoint}, ":sub": {"N": str(sub)}},
                            " AND pendingOwner = :to")

    def delete(self, key) -> None:
        self.client.delete_item(TableName=self.table, Key={"leaseKey": {"S": key}})
