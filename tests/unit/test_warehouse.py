"""Warehouse file operations on the local file system, and how an S3 warehouse (MinIO)
is addressed; the S3 path itself runs in the compose end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from datadrill.platform.warehouse import Warehouse, metadata_version


def _touch(path: Path, text: str, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))


def test_metadata_files_are_listed_oldest_version_first(tmp_path: Path) -> None:
    directory = tmp_path / "dwh" / "orders" / "metadata"
    # Versions order the files, not the clock: the newest mtime belongs to an old version.
    _touch(directory / "00002-b.metadata.json", "2", 100)
    _touch(directory / "00010-c.metadata.json", "10", 50)
    _touch(directory / "00001-a.metadata.json", "1", 300)
    _touch(directory / "snap-1.avro", "manifest list", 10)
    warehouse = Warehouse(f"file://{tmp_path}")
    files = warehouse.metadata_files(f"file://{directory}")
    assert [f.name for f in files] == [
        "00001-a.metadata.json",
        "00002-b.metadata.json",
        "00010-c.metadata.json",
    ]
    assert files[0].location == f"file://{directory}/00001-a.metadata.json"
    assert warehouse.metadata_files(f"file://{tmp_path}/missing") == []


def test_read_write_delete_round_trip(tmp_path: Path) -> None:
    warehouse = Warehouse(f"file://{tmp_path}")
    location = f"file://{tmp_path}/dwh/orders/metadata/00003-x.metadata.json"
    assert not warehouse.exists(location)
    warehouse.write_bytes(location, b'{"format-version": 2}')
    assert warehouse.exists(location)
    assert warehouse.read_bytes(location) == b'{"format-version": 2}'
    assert Warehouse.parent(location) == f"file://{tmp_path}/dwh/orders/metadata"
    warehouse.delete(location)
    assert not warehouse.exists(location)


def test_an_s3_warehouse_is_addressed_by_bucket_and_key_on_the_configured_endpoint() -> None:
    warehouse = Warehouse(
        "s3://warehouse/",
        {
            "s3.endpoint": "http://127.0.0.1:19000",
            "s3.access-key-id": "drill",
            "s3.secret-access-key": "drilldrill",
            "s3.force-virtual-addressing": "false",
        },
    )
    assert warehouse.location == "s3://warehouse" and not warehouse.is_local
    fs, path = warehouse._resolve("s3://warehouse/dwh/orders/metadata/00001-a.metadata.json")
    assert isinstance(fs, pafs.S3FileSystem)
    assert path == "warehouse/dwh/orders/metadata/00001-a.metadata.json"
    assert fs.region == "us-east-1"


def test_other_schemes_are_refused_with_what_is_supported() -> None:
    with pytest.raises(ValueError, match="file:// or s3://"):
        Warehouse("gs://bucket").exists("gs://bucket/x")


def test_version_numbers_come_from_the_name() -> None:
    assert metadata_version("00012-3f2a.metadata.json") == 12
    assert metadata_version("v3.metadata.json") == -1
