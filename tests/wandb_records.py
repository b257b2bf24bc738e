"""Read back what an offline W&B run recorded (its ``run-*.wandb`` file), so tests check
the real file that ``wandb sync`` would upload: run config, group, tags, summary, exit."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7  # b":W&B" + 2-byte magic + 1-byte version


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, raw, partial = HEADER, [], b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # block trailer too small for a header: skip it
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            break
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            raw.append(partial)
    records = []
    for item in raw:
        record = pb.Record()
        record.ParseFromString(item)
        records.append(record)
    return records


def summarize_run(run_dir: Path) -> dict:
    """run config (top-level keys -> values), group, tags, summary, exit code."""
    (path,) = run_dir.glob("run-*.wandb")
    out = {"config": {}, "summary": {}, "exit_code": None}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["group"] = record.run.run_group
            out["job_type"] = record.run.job_type
            out["tags"] = list(record.run.tags)
            out["config"].update(
                {i.key: json.loads(i.value_json) for i in record.run.config.update}
            )
        elif kind == "summary":
            out["summary"].update(
                {i.key: json.loads(i.value_json) for i in record.summary.update if i.key}
            )
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out
